"""Commands and status events published by the exchange-funding workflow."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from shared.contracts.intake import Contract
from shared.contracts.money import Money


class Deadline(Contract):
    name: str
    due_at: datetime


class ApplicationStatusChanged(Contract):
    application_id: str
    member_id: str
    program_code: str
    stage: str
    previous_stage: str | None
    reason: str | None = None
    deadlines: list[Deadline] = Field(default_factory=list)
    action_required: str | None = Field(
        default=None, description="What the applicant must do next, if anything."
    )


class RequestReviews(Contract):
    application_id: str
    round: int = Field(ge=1)
    reviews_needed: int = Field(ge=1)
    due_at: datetime
    application_snapshot: dict[str, Any]
    rubric: dict[str, Any]


class ReassignReview(Contract):
    application_id: str
    round: int = Field(ge=1)
    task_id: str
    reason: str


class ReserveFunds(Contract):
    application_id: str
    program_code: str
    cycle: str
    amount: Money


class ReleaseFunds(Contract):
    application_id: str
    program_code: str
    cycle: str
    amount: Money
    reason: str


class PayTranche(Contract):
    application_id: str
    tranche: int = Field(ge=1)
    amount: Money
    payee_reference: str
    idempotency_key: str = Field(description="'<application>:<tranche>'")


class RequestRefund(Contract):
    application_id: str
    amount: Money
    reason: str


class AdjustAward(Contract):
    application_id: str
    new_award: Money
    reason: str


class RequestReport(Contract):
    application_id: str
    member_id: str
    due_on: date
    reminder_offsets_days: list[int]
    budget_lines: list[dict[str, Any]]


class ReportOverdue(Contract):
    application_id: str
    member_id: str
    due_on: date


class ReviewReport(Contract):
    application_id: str
    report_id: str
    due_at: datetime
    rubric: dict[str, Any]


class EscalatedToOfficer(Contract):
    application_id: str
    stage: str
    reason: str
    kind: Literal["partner_unconfirmed", "reviewers_short", "payment_failing", "other"] = "other"
