"""Every topic of the system, its version, its one owning producer and its payload model.

Events are past tense (``grants.funds.reserved.v1``), commands imperative
(``grants.funds.reserve.v1``), in topic names and in the constants that name them
(``RESERVE_FUNDS`` carries ``ReserveFunds``; ``FUNDS_RESERVED`` answers it). Dead letters of
a topic go to ``<topic>.dlq``.

Renamed commands (their old names were past tense; drain the old topics before upgrading):
``grants.partner.confirmation_requested.v1`` is ``grants.partner.request_confirmation.v1``,
``grants.review.requested.v1`` is ``grants.review.request.v1``,
``grants.report.review_requested.v1`` is ``grants.report.request_review.v1`` and
``grants.report.requested.v1`` is ``grants.report.request.v1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from shared.contracts import disbursement, finance, intake, reporting, review, workflows

DEAD_LETTER_SUFFIX = ".dlq"


class Producer(StrEnum):
    INTAKE = "intake"
    REVIEW = "review"
    DISBURSEMENT = "disbursement"
    REPORTING = "reporting"
    WORKFLOWS = "workflows"
    FINANCE = "finance"


class Kind(StrEnum):
    EVENT = "event"
    COMMAND = "command"


@dataclass(frozen=True)
class Topic:
    name: str
    owner: Producer
    payload: type[BaseModel]
    kind: Kind
    description: str

    @property
    def dead_letter(self) -> str:
        return self.name + DEAD_LETTER_SUFFIX

    def qualified(self, prefix: str = "") -> str:
        """The topic's name on the broker; a prefix isolates test runs and environments."""
        return f"{prefix}{self.name}"


def _event(name: str, owner: Producer, payload: type[BaseModel], description: str) -> Topic:
    return Topic(name, owner, payload, Kind.EVENT, description)


def _command(name: str, owner: Producer, payload: type[BaseModel], description: str) -> Topic:
    return Topic(name, owner, payload, Kind.COMMAND, description)


APPLICATION_SUBMITTED = _event(
    "grants.application.submitted.v1",
    Producer.INTAKE,
    intake.ApplicationSubmitted,
    "An applicant submitted an application; carries the rules snapshot.",
)
PROGRAM_CYCLE_OPENED = _event(
    "grants.program.cycle_opened.v1",
    Producer.INTAKE,
    intake.ProgramCycleOpened,
    "A program cycle opened: its annual budget from the catalog becomes the opening balance.",
)
APPLICATION_WITHDRAWN = _event(
    "grants.application.withdrawn.v1",
    Producer.INTAKE,
    intake.ApplicationWithdrawn,
    "The applicant withdrew the application.",
)
APPLICATION_RESUBMITTED = _event(
    "grants.application.resubmitted.v1",
    Producer.INTAKE,
    intake.ApplicationResubmitted,
    "The applicant resubmitted after a revision request.",
)
AMENDMENT_REQUESTED = _event(
    "grants.application.amendment_requested.v1",
    Producer.INTAKE,
    intake.AmendmentRequested,
    "The applicant asked to move dates or change the award.",
)
PARTNER_CONFIRMED = _event(
    "grants.partner.confirmed.v1",
    Producer.INTAKE,
    intake.PartnerConfirmed,
    "The partner sister city answered the confirmation link.",
)
APPLICATION_STATUS_CHANGED = _event(
    "grants.application.status_changed.v1",
    Producer.WORKFLOWS,
    workflows.ApplicationStatusChanged,
    "Every lifecycle transition, with the deadlines ahead.",
)
REQUEST_PARTNER_CONFIRMATION = _command(
    "grants.partner.request_confirmation.v1",
    Producer.WORKFLOWS,
    workflows.RequestPartnerConfirmation,
    "Send the partner sister city its one-time confirmation link.",
)
REMINDER_DUE = _event(
    "grants.application.reminder_due.v1",
    Producer.WORKFLOWS,
    workflows.ReminderDue,
    "A deadline approaches or has passed; the applicant is reminded.",
)
REQUEST_REVIEWS = _command(
    "grants.review.request.v1",
    Producer.WORKFLOWS,
    workflows.RequestReviews,
    "Assign reviewers and collect N reviews by the due date.",
)
REASSIGN_REVIEW = _command(
    "grants.review.reassign.v1",
    Producer.WORKFLOWS,
    workflows.ReassignReview,
    "Move a late review task to another reviewer.",
)
REQUEST_REPORT_REVIEW = _command(
    "grants.report.request_review.v1",
    Producer.WORKFLOWS,
    workflows.RequestReportReview,
    "Review a submitted post-exchange report.",
)
REVIEW_COMPLETED = _event(
    "grants.review.completed.v1",
    Producer.REVIEW,
    review.ReviewCompleted,
    "A reviewer submitted scores and a recommendation.",
)
REVIEWER_RECUSED = _event(
    "grants.review.recused.v1",
    Producer.REVIEW,
    review.ReviewerRecused,
    "A reviewer declared a conflict and left the task.",
)
REVIEWERS_SHORT = _event(
    "grants.review.reviewers_short.v1",
    Producer.REVIEW,
    review.ReviewersShort,
    "Not enough eligible reviewers; an officer must step in.",
)
REPORT_REVIEWED = _event(
    "grants.report.reviewed.v1",
    Producer.REVIEW,
    review.ReportReviewed,
    "A post-exchange report was approved or sent back.",
)
RESERVE_FUNDS = _command(
    "grants.funds.reserve.v1",
    Producer.WORKFLOWS,
    workflows.ReserveFunds,
    "Reserve the award against the program budget.",
)
RELEASE_FUNDS = _command(
    "grants.funds.release.v1",
    Producer.WORKFLOWS,
    workflows.ReleaseFunds,
    "Release what is left of a reservation.",
)
PAY_TRANCHE = _command(
    "grants.tranche.pay.v1",
    Producer.WORKFLOWS,
    workflows.PayTranche,
    "Pay one tranche of an award.",
)
REQUEST_REFUND = _command(
    "grants.refund.request.v1",
    Producer.WORKFLOWS,
    workflows.RequestRefund,
    "Recover money paid for a cancelled exchange or an underspend.",
)
ADJUST_AWARD = _command(
    "grants.award.adjust.v1",
    Producer.WORKFLOWS,
    workflows.AdjustAward,
    "Change the award after an amendment.",
)
REQUEST_REPORT = _command(
    "grants.report.request.v1",
    Producer.WORKFLOWS,
    workflows.RequestReport,
    "Open a post-exchange report obligation.",
)
REPORT_OVERDUE = _event(
    "grants.report.overdue.v1",
    Producer.WORKFLOWS,
    workflows.ReportOverdue,
    "The report is past due: standing is lost and the final tranche is on hold.",
)
ESCALATED_TO_OFFICER = _event(
    "grants.officer.escalated.v1",
    Producer.WORKFLOWS,
    workflows.EscalatedToOfficer,
    "A program officer must decide.",
)
FUNDS_RESERVED = _event(
    "grants.funds.reserved.v1",
    Producer.DISBURSEMENT,
    disbursement.FundsReserved,
    "The award is reserved.",
)
FUNDS_REFUSED = _event(
    "grants.funds.refused.v1",
    Producer.DISBURSEMENT,
    disbursement.FundsRefused,
    "The budget cannot cover the award; the application is waitlisted.",
)
FUNDS_RELEASED = _event(
    "grants.funds.released.v1",
    Producer.DISBURSEMENT,
    disbursement.FundsReleased,
    "A reservation was released back to the budget.",
)
AWARD_ADJUSTED = _event(
    "grants.award.adjusted.v1",
    Producer.DISBURSEMENT,
    disbursement.AwardAdjusted,
    "The award and its reservation follow an approved amendment.",
)
DISBURSEMENT_SETTLED = _event(
    "grants.disbursement.settled.v1",
    Producer.DISBURSEMENT,
    disbursement.DisbursementSettled,
    "Finance paid a tranche.",
)
DISBURSEMENT_FAILED = _event(
    "grants.disbursement.failed.v1",
    Producer.DISBURSEMENT,
    disbursement.DisbursementFailed,
    "Finance could not pay a tranche.",
)
REFUND_REQUESTED = _event(
    "grants.refund.requested.v1",
    Producer.DISBURSEMENT,
    disbursement.RefundRequested,
    "A refund was requested from the member.",
)
REFUND_RECEIVED = _event(
    "grants.refund.received.v1",
    Producer.DISBURSEMENT,
    disbursement.RefundReceived,
    "Finance received (part of) a refund; refund_due went down by it.",
)
REFUND_OVERDUE = _event(
    "grants.refund.overdue.v1",
    Producer.DISBURSEMENT,
    disbursement.RefundOverdue,
    "A refund is still due after the last reminder: a program officer must follow it up.",
)
PAYMENT_INSTRUCTED = _event(
    "finance.payment.instructed.v1",
    Producer.DISBURSEMENT,
    finance.PaymentInstructed,
    "Disbursement instructed a payment; the finance system pays it (the instruction id is "
    "the idempotency key) and answers on the settled or failed topic. An event: the finance "
    "system's contract, which names what disbursement did, not what finance must do.",
)
PAYMENT_SETTLED = _event(
    "finance.payment.settled.v1",
    Producer.FINANCE,
    finance.PaymentSettled,
    "Finance settled an instruction.",
)
PAYMENT_FAILED = _event(
    "finance.payment.failed.v1",
    Producer.FINANCE,
    finance.PaymentFailed,
    "Finance rejected an instruction.",
)
FINANCE_REFUND_REQUESTED = _event(
    "finance.refund.requested.v1",
    Producer.DISBURSEMENT,
    finance.RefundCollectionRequested,
    "Disbursement asked finance to collect a refund from the member (the refund id is the "
    "idempotency key), and asks again as a reminder while it is not received in full; "
    "finance answers on the refund received or failed topic.",
)
FINANCE_REFUND_RECEIVED = _event(
    "finance.refund.received.v1",
    Producer.FINANCE,
    finance.RefundCollected,
    "Finance received money for a refund (all that is outstanding, or a part).",
)
FINANCE_REFUND_FAILED = _event(
    "finance.refund.failed.v1",
    Producer.FINANCE,
    finance.RefundCollectionFailed,
    "Finance could not collect a refund.",
)
REPORT_SUBMITTED = _event(
    "grants.report.submitted.v1",
    Producer.REPORTING,
    reporting.ReportSubmitted,
    "The member submitted its post-exchange report.",
)
MEMBER_STANDING_CHANGED = _event(
    "grants.member.standing_changed.v1",
    Producer.REPORTING,
    reporting.MemberStandingChanged,
    "A member lost or regained good standing.",
)

ALL_TOPICS: tuple[Topic, ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, Topic)
)
TOPICS_BY_NAME: dict[str, Topic] = {topic.name: topic for topic in ALL_TOPICS}


def broker_topic_names(prefix: str = "") -> list[str]:
    """Every topic and its dead-letter topic, as they must exist before consumers start."""
    names: list[str] = []
    for topic in ALL_TOPICS:
        names += [topic.qualified(prefix), topic.qualified(prefix) + DEAD_LETTER_SUFFIX]
    return names
