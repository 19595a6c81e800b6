"""Commands and status events published by the exchange-funding workflow.

Every command carries a deterministic ``command_id`` (from the workflow id and the step),
so a command re-sent after its deadline is recognised as the same command.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from shared.contracts.base import Contract
from shared.contracts.intake import BudgetLine
from shared.contracts.money import Money
from shared.contracts.programs import Rubric


class Deadline(Contract):
    name: str
    due_at: datetime


class Amounts(Contract):
    requested: Money
    awarded: Money | None = None
    reserved: Money | None = None
    paid: Money | None = None
    refunded: Money | None = None


# Why a program officer is asked to step in (``EscalatedToOfficer.kind``).
EscalationKind = Literal[
    "partner_unconfirmed",
    "reviewers_short",
    "reviews_late",
    "payment_failing",
    "report_overdue",
    "amendment_waiting",
    "command_unanswered",
    "other",
]


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
    amounts: Amounts | None = None
    sequence: int = Field(ge=1, description="Orders status events of one application.")
    waiting_for_officer: list[EscalationKind] = Field(
        default_factory=list,
        description="The kinds of escalation still waiting for a program officer; a kind "
        "raised earlier and missing here has been resolved.",
    )


class ReminderDue(Contract):
    application_id: str
    member_id: str
    about: Literal["report_due", "report_overdue", "revision_due", "report_changes_due"]
    due_at: datetime
    message: str


class RequestPartnerConfirmation(Contract):
    command_id: str
    application_id: str
    partner_city: str
    partner_contact_email: str
    due_at: datetime


class RequestReviews(Contract):
    command_id: str
    application_id: str
    round: int = Field(ge=1)
    reviews_needed: int = Field(ge=1)
    due_at: datetime
    member_id: str
    member_city: str
    program_code: str
    focus_area: str
    partner_city: str
    partner_country: str
    blind_review: bool
    title: str
    summary: str
    requested: Money
    rubric: Rubric


class ReassignReview(Contract):
    command_id: str
    application_id: str
    round: int = Field(ge=1)
    reason: str
    task_id: str | None = Field(
        default=None, description="None: every task of the round not yet completed."
    )


class RequestReportReview(Contract):
    command_id: str
    application_id: str
    report_id: str
    member_id: str
    program_code: str
    due_at: datetime
    rubric: Rubric


class LedgerCommand(Contract):
    """A command that moves money: the ledger refuses to apply one idempotency key twice."""

    command_id: str
    idempotency_key: str
    application_id: str
    program_code: str
    cycle: str


class ReserveFunds(LedgerCommand):
    amount: Money


class ReleaseFunds(LedgerCommand):
    reason: str
    amount: Money | None = Field(default=None, description="None: all that is still reserved.")


class PayTranche(LedgerCommand):
    """Its idempotency key is '<application>:<tranche>'.

    Disbursement alone retries finance (up to its max_payment_attempts) and answers only
    DisbursementSettled, or DisbursementFailed once the payment failed for good. The same
    command again gets the answers so far; a new command with the same key (a program
    officer's "pay again") starts a new round of attempts for the same instruction, never
    a second payment.
    """

    tranche: int = Field(ge=1)
    amount: Money
    payee_reference: str = Field(description="The member's payee reference at finance.")
    memo: str


class RequestRefund(LedgerCommand):
    amount: Money
    reason: str


class AdjustAward(LedgerCommand):
    new_award: Money
    reason: str


class RequestReport(Contract):
    command_id: str
    application_id: str
    report_id: str
    member_id: str
    program_code: str
    due_on: date
    reminders_at: list[datetime]
    budget_lines: list[BudgetLine]
    awarded: Money


class ReportOverdue(Contract):
    application_id: str
    report_id: str
    member_id: str
    due_on: date


class EscalatedToOfficer(Contract):
    application_id: str
    stage: str
    reason: str
    kind: EscalationKind = "other"
    sequence: int | None = Field(
        default=None,
        ge=1,
        description="The sequence of the status event this escalation follows: only a later "
        "status event can say that it was resolved.",
    )
    program_code: str | None = None
