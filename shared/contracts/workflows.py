"""Commands and status events published by the exchange-funding workflow.

Every command carries a deterministic ``command_id`` (from the workflow id and the step),
so a command re-sent after its deadline is recognised as the same command.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field

from shared.contracts.base import (
    ApplicationId,
    CityName,
    CommandId,
    Contract,
    Count,
    CountryCode,
    Cycle,
    Email,
    FocusArea,
    LongText,
    MemberId,
    ProgramCode,
    Reason,
    Reference,
    ReportId,
    Round,
    Sequence,
    Stage,
    TaskId,
    Title,
)
from shared.contracts.intake import BudgetLine
from shared.contracts.money import Money
from shared.contracts.programs import Rubric


class Deadline(Contract):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    due_at: datetime


class Amounts(Contract):
    requested: Money
    awarded: Money | None = None
    reserved: Money | None = None
    paid: Money | None = None
    refunded: Money | None = None


# Why a program officer is asked to step in (``EscalatedToOfficer.kind``; ``refund_overdue``
# comes from disbursement's grants.refund.overdue.v1, not from the workflow).
EscalationKind = Literal[
    "partner_unconfirmed",
    "reviewers_short",
    "reviews_late",
    "payment_failing",
    "report_overdue",
    "amendment_waiting",
    "wide_score_spread",
    "command_unanswered",
    "refund_overdue",
    "other",
]


class ApplicationStatusChanged(Contract):
    application_id: ApplicationId
    member_id: MemberId
    program_code: ProgramCode
    stage: Stage
    previous_stage: Stage | None
    reason: LongText | None = None
    deadlines: list[Deadline] = Field(default_factory=list, max_length=20)
    action_required: LongText | None = Field(
        default=None, description="What the applicant must do next, if anything."
    )
    amounts: Amounts | None = None
    sequence: Sequence = Field(description="Orders status events of one application.")
    waiting_for_officer: list[EscalationKind] = Field(
        default_factory=list,
        max_length=20,
        description="The kinds of escalation still waiting for a program officer; a kind "
        "raised earlier and missing here has been resolved.",
    )


class ReminderDue(Contract):
    application_id: ApplicationId
    member_id: MemberId
    about: Literal["report_due", "report_overdue", "revision_due", "report_changes_due"]
    due_at: datetime
    message: LongText


class RequestPartnerConfirmation(Contract):
    command_id: CommandId
    application_id: ApplicationId
    partner_city: CityName
    partner_contact_email: Email
    due_at: datetime


class PartnerForReview(Contract):
    name: CityName
    country: CountryCode


class ApplicationForReview(Contract):
    """What reviewers judge feasibility on, besides the title and summary: the plan and its
    money. Contacts stay out; blind review withholds the cities' names as well."""

    objectives: LongText | None = None
    exchange_start: date
    exchange_end: date
    adults: Count
    youth: Count
    partners: list[PartnerForReview] = Field(min_length=1, max_length=20)
    budget_lines: list[BudgetLine] = Field(max_length=100)
    matching_cash: Money
    matching_in_kind: Money


class RequestReviews(Contract):
    command_id: CommandId
    application_id: ApplicationId
    round: Round
    reviews_needed: int = Field(ge=1, le=100)
    due_at: datetime
    member_id: MemberId
    member_city: CityName
    program_code: ProgramCode
    focus_area: FocusArea
    partner_city: CityName
    partner_country: CountryCode
    blind_review: bool
    title: Title
    summary: LongText
    requested: Money
    rubric: Rubric
    application: ApplicationForReview | None = Field(
        default=None,
        description="The whole application as reviewers read it; absent from requests sent "
        "before it was carried.",
    )


class ReassignReview(Contract):
    command_id: CommandId
    application_id: ApplicationId
    round: Round
    reason: Reason
    task_id: TaskId | None = Field(
        default=None, description="None: every task of the round not yet completed."
    )


class RequestReportReview(Contract):
    command_id: CommandId
    application_id: ApplicationId
    report_id: ReportId
    member_id: MemberId
    program_code: ProgramCode
    due_at: datetime
    rubric: Rubric


class LedgerCommand(Contract):
    """A command that moves money: the ledger refuses to apply one idempotency key twice."""

    command_id: CommandId
    idempotency_key: Reference
    application_id: ApplicationId
    program_code: ProgramCode
    cycle: Cycle


class ReserveFunds(LedgerCommand):
    amount: Money
    submitted_at: datetime | None = Field(
        default=None,
        description="When the application was submitted: a waitlist is served in this order.",
    )


class ReleaseFunds(LedgerCommand):
    reason: Reason
    amount: Money | None = Field(default=None, description="None: all that is still reserved.")


class PayTranche(LedgerCommand):
    """Its idempotency key is '<application>:<tranche>'.

    Disbursement alone retries finance (up to its max_payment_attempts) and answers only
    DisbursementSettled, or DisbursementFailed once the payment failed for good. The same
    command again gets the answers so far; a new command with the same key (a program
    officer's "pay again") starts a new round of attempts for the same instruction, never
    a second payment.
    """

    tranche: int = Field(ge=1, le=100)
    amount: Money
    payee_reference: Reference = Field(description="The member's payee reference at finance.")
    memo: Reason


class RequestRefund(LedgerCommand):
    amount: Money
    reason: Reason


class AdjustAward(LedgerCommand):
    new_award: Money
    reason: Reason


class RequestReport(Contract):
    command_id: CommandId
    application_id: ApplicationId
    report_id: ReportId
    member_id: MemberId
    program_code: ProgramCode
    due_on: date
    reminders_at: list[datetime] = Field(max_length=50)
    budget_lines: list[BudgetLine] = Field(max_length=100)
    awarded: Money


class ReportOverdue(Contract):
    application_id: ApplicationId
    report_id: ReportId
    member_id: MemberId
    due_on: date


class EscalatedToOfficer(Contract):
    application_id: ApplicationId
    stage: Stage
    reason: LongText
    kind: EscalationKind = "other"
    sequence: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="The sequence of the status event this escalation follows: only a later "
        "status event can say that it was resolved.",
    )
    program_code: ProgramCode | None = None
