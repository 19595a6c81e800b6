"""Payloads published by the intake service: applicant and partner actions."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import Field

from shared.contracts.base import (
    ApplicationId,
    Category,
    CityName,
    CommandId,
    Contract,
    Count,
    CountryCode,
    Cycle,
    Description,
    Email,
    FocusArea,
    LongText,
    MemberId,
    PersonName,
    ProgramCode,
    Reason,
    Title,
)
from shared.contracts.money import ExchangeRate, Money
from shared.contracts.programs import ProgramRules


class PartnerCity(Contract):
    name: CityName
    country: CountryCode
    contact_name: PersonName
    contact_email: Email


class BudgetLine(Contract):
    category: Category
    description: Description
    amount: Money = Field(description="In the currency it will be spent in.")
    converted: Money = Field(description="In the program currency, at the recorded rate.")
    fx_rate: ExchangeRate | None = Field(
        default=None,
        description="Rate used for ``converted``: program-currency units per unit of the line's "
        "currency, as decimal text ('1' when the currencies are the same).",
    )


class PlannedOutcomes(Contract):
    """What the applicant expects the exchange to achieve; the report's outcomes answer it
    field for field (``ReportOutcomes``)."""

    agreements_signed: int = Field(default=0, ge=0, le=100_000)
    trade_leads: int = Field(default=0, ge=0, le=100_000)
    students_exchanged: int = Field(default=0, ge=0, le=100_000)
    follow_up_projects: int = Field(default=0, ge=0, le=100_000)


class ApplicationSubmitted(Contract):
    application_id: ApplicationId
    member_id: MemberId
    member_name: CityName
    member_country: CountryCode
    program_code: ProgramCode
    cycle: Cycle
    focus_area: FocusArea
    title: Title
    summary: LongText
    objectives: LongText | None = Field(
        default=None, description="What the exchange sets out to do (reviewers judge it)."
    )
    partner: PartnerCity = Field(description="The first partner city.")
    other_partners: list[PartnerCity] = Field(
        default_factory=list,
        max_length=9,
        description="Partner cities beyond the first, for an exchange among several sister "
        "cities (a tri-lateral exchange); each confirms through its own link.",
    )
    exchange_start: date
    exchange_end: date
    adults: Count
    youth: Count
    budget_lines: list[BudgetLine] = Field(max_length=100)
    requested: Money
    matching_cash: Money
    matching_in_kind: Money
    contact_emails: list[Email] = Field(max_length=20)
    member_in_good_standing: bool = Field(
        default=True, description="No overdue report from an earlier grant at submission."
    )
    expected_outcomes: PlannedOutcomes | None = Field(
        default=None, description="What the exchange should achieve; reporting compares."
    )
    rules: ProgramRules = Field(description="The program rules at submission (the snapshot).")

    def every_partner(self) -> list[PartnerCity]:
        return [self.partner, *self.other_partners]


class ProgramCycleOpened(Contract):
    """A program's cycle is open for applications: its annual budget is the ledger's opening
    balance. Keyed ``program-<code>-<cycle>``; one per program, cycle and catalog version."""

    program_code: ProgramCode
    cycle: Cycle
    annual_budget: Money
    catalog_version: Annotated[str, Field(min_length=1, max_length=40)]


def program_cycle_key(program_code: str, cycle: str) -> str:
    """The Kafka key (envelope ``application_id``) of a program cycle's events."""
    return f"program-{program_code}-{cycle}"


class ApplicationWithdrawn(Contract):
    application_id: ApplicationId
    member_id: MemberId
    reason: Reason


class ApplicationResubmitted(Contract):
    application_id: ApplicationId
    member_id: MemberId
    revision: int = Field(ge=1, le=1000)
    requested: Money
    summary: LongText
    budget_lines: list[BudgetLine] = Field(max_length=100)


class AmendmentRequested(Contract):
    application_id: ApplicationId
    member_id: MemberId
    amendment_id: CommandId
    new_exchange_start: date | None = None
    new_exchange_end: date | None = None
    new_award: Money | None = None
    cancel_exchange: bool = False
    reason: Reason


class PartnerConfirmed(Contract):
    application_id: ApplicationId
    partner_contact_email: Email
    confirmed: bool = Field(description="False when the partner declines to take part.")
    note: Reason | None = None
