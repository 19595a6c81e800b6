"""Payloads published by the reporting service."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from shared.contracts.base import ApplicationId, Category, Contract, Description, MemberId, ReportId
from shared.contracts.money import Money, Payment


class ReportParticipants(Contract):
    adults: int = Field(ge=0, le=100_000, description="Adults who actually took part.")
    youth: int = Field(ge=0, le=100_000, description="Participants under 18.")


class ReportActivity(Contract):
    title: str = Field(min_length=1, max_length=200)
    held_on: date
    ends_on: date | None = Field(default=None, description="Last day, for a multi-day activity.")
    description: str = Field(default="", max_length=4000)

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> ReportActivity:
        if self.ends_on is not None and self.ends_on < self.held_on:
            raise ValueError("ends_on must not be before held_on")
        return self


class ReportOutcomes(Contract):
    agreements_signed: int = Field(
        default=0, ge=0, le=100_000, description="Agreements or MOUs signed."
    )
    trade_leads: int = Field(default=0, ge=0, le=100_000)
    jobs_created: int = Field(default=0, ge=0, le=100_000)
    students_exchanged: int = Field(default=0, ge=0, le=100_000)
    follow_up_projects: int = Field(default=0, ge=0, le=100_000)
    narrative: str = Field(default="", max_length=20_000)


class SpendingLine(Contract):
    category: Category = Field(description="A budget line's category.")
    description: Description = ""
    amount: Payment = Field(description="What was spent, in the currency it was spent in.")
    converted: Payment = Field(
        description="The same amount in the award currency, converted by reporting at the "
        "rate recorded with the budget."
    )


class AttachmentMeta(Contract):
    name: str = Field(min_length=1, max_length=255)
    content_type: str = Field(pattern=r"^[\w.+-]+/[\w.+-]+$", max_length=127)
    size_bytes: int = Field(ge=0, le=100 * 1024 * 1024)


class ReportContent(Contract):
    """A complete post-exchange report, as submitted."""

    participants: ReportParticipants
    activities: list[ReportActivity] = Field(min_length=1, max_length=200)
    outcomes: ReportOutcomes
    spending: list[SpendingLine] = Field(min_length=1, max_length=200)
    attachments: list[AttachmentMeta] = Field(default_factory=list, max_length=50)
    lessons_learned: str = Field(min_length=1, max_length=20_000)


class ReportSubmitted(Contract):
    application_id: ApplicationId
    report_id: ReportId
    member_id: MemberId
    actual_spending: Money
    revision: int = Field(default=1, ge=1, le=1000)
    due_on: date | None = Field(default=None, description="The due date the report answered.")
    content: ReportContent | None = Field(
        default=None, description="The report itself: reviewers and analytics read it here."
    )


class MemberStandingChanged(Contract):
    member_id: MemberId
    good_standing: bool
    reason: Literal["report_overdue", "report_received", "membership_lapsed", "restored"]
    application_id: ApplicationId | None = None
    as_of: date
