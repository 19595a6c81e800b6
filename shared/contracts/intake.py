"""Payloads published by the intake service (applicant actions and member standing inputs)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.money import Money


class Contract(BaseModel):
    """Base of every payload: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PartnerCity(Contract):
    name: str
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO-3166 alpha-2 country code.")
    contact_email: str


class ApplicationSubmitted(Contract):
    application_id: str
    member_id: str
    program_code: str
    cycle: str = Field(description="Program cycle, e.g. 2027.")
    focus_area: str
    title: str
    partner: PartnerCity
    exchange_start: date
    exchange_end: date
    requested: Money
    rules_snapshot: dict[str, Any] = Field(
        description="The program rules at submission, with the catalog version."
    )
    catalog_version: str


class ApplicationWithdrawn(Contract):
    application_id: str
    member_id: str
    reason: str


class ApplicationResubmitted(Contract):
    application_id: str
    member_id: str
    revision: int = Field(ge=1)
    requested: Money


class AmendmentRequested(Contract):
    application_id: str
    member_id: str
    amendment_id: str
    new_exchange_end: date | None = None
    new_award: Money | None = None
    reason: str


class PartnerConfirmed(Contract):
    application_id: str
    partner_contact_email: str
    confirmed: bool
    note: str | None = None
