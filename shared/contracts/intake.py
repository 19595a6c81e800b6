"""Payloads published by the intake service: applicant and partner actions."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from shared.contracts.base import Contract
from shared.contracts.money import Money
from shared.contracts.programs import ProgramRules


class PartnerCity(Contract):
    name: str
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO-3166 alpha-2 country code.")
    contact_name: str
    contact_email: str


class BudgetLine(Contract):
    category: str
    description: str
    amount: Money = Field(description="In the currency it will be spent in.")
    converted: Money = Field(description="In the program currency, at the recorded rate.")
    fx_rate: str | None = Field(
        default=None,
        description="Rate used for ``converted``: program-currency units per unit of the line's "
        "currency, as decimal text ('1' when the currencies are the same).",
    )


class ApplicationSubmitted(Contract):
    application_id: str
    member_id: str
    member_name: str
    member_country: str
    program_code: str
    cycle: str
    focus_area: str
    title: str
    summary: str
    partner: PartnerCity
    exchange_start: date
    exchange_end: date
    adults: int = Field(ge=0)
    youth: int = Field(ge=0)
    budget_lines: list[BudgetLine]
    requested: Money
    matching_cash: Money
    matching_in_kind: Money
    contact_emails: list[str]
    member_in_good_standing: bool = Field(
        default=True, description="No overdue report from an earlier grant at submission."
    )
    rules: ProgramRules = Field(description="The program rules at submission (the snapshot).")


class ApplicationWithdrawn(Contract):
    application_id: str
    member_id: str
    reason: str


class ApplicationResubmitted(Contract):
    application_id: str
    member_id: str
    revision: int = Field(ge=1)
    requested: Money
    summary: str
    budget_lines: list[BudgetLine]


class AmendmentRequested(Contract):
    application_id: str
    member_id: str
    amendment_id: str
    new_exchange_start: date | None = None
    new_exchange_end: date | None = None
    new_award: Money | None = None
    cancel_exchange: bool = False
    reason: str


class PartnerConfirmed(Contract):
    application_id: str
    partner_contact_email: str
    confirmed: bool = Field(description="False when the partner declines to take part.")
    note: str | None = None
