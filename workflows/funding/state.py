"""What one lifecycle holds: the base of the exchange-funding workflow.

The workflow is one class (Temporal collects signal, update and query handlers from the
class and its bases), built in layers, each in its own module and each on the one below:

- ``state``: everything the lifecycle holds, and views of it;
- ``requests``: officers' requests (updates and their validators), held until taken up;
- ``channel``: transitions and status events, commands sent and re-sent, escalations,
  and ``_wait``, the one way the lifecycle waits;
- ``events``: what the other services tell the lifecycle (signals);
- ``money``: reservation, payments, refunds, releases and close-out;
- ``selection`` and ``exchange``: the stages before and after the award;
- ``workflow``: the workflow itself, its run and its queries.

Determinism: the only clock is ``workflow.now()``, every id is derived from the workflow
id and the step, and every collection that is iterated is a dict or a list (never a set:
its order depends on the process's hash seed, so a replay in another process could issue
commands differently).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from shared.contracts.envelope import Envelope
    from shared.contracts.intake import (
        AmendmentRequested,
        ApplicationResubmitted,
        PartnerCity,
        PartnerConfirmed,
    )
    from shared.contracts.money import Money
    from shared.contracts.reporting import ReportSubmitted
    from shared.contracts.review import (
        ReportReviewed,
        ReviewCompleted,
        ReviewerRecused,
        ReviewersShort,
    )
    from shared.contracts.topics import Topic
    from shared.contracts.workflows import Amounts, Deadline, EscalationKind
    from workflows.funding.models import (
        NOT_WITHDRAWABLE,
        AmendmentDecision,
        FundingInput,
        LifecycleView,
        Outgoing,
        OutstandingCommand,
        OverrideDecision,
        PartnerDecision,
        PartnerStanding,
        PendingAmendment,
        ResendCommand,
        Stage,
        Transition,
        WithdrawRequest,
        workflow_id,
    )

Answer = Envelope[Any]
RequestT = TypeVar("RequestT")


class Withdrawn(Exception):  # noqa: N818 - control flow, not an error
    """Raised out of any wait when the applicant withdraws; the run undoes what was done."""


@dataclass
class Request(Generic[RequestT]):
    """An officer's (or the applicant's) request, held until the lifecycle takes it up."""

    value: RequestT
    accepted: bool | None = None
    message: str = ""

    def accept(self, message: str) -> None:
        self.accepted, self.message = True, message

    def refuse(self, message: str) -> None:
        self.accepted, self.message = False, message


@dataclass
class Command:
    """A command sent, kept alive (sent again) until it is answered or closed."""

    command_id: str
    step: str
    topic: Topic
    payload: dict[str, Any]
    resend_after: timedelta | None
    first_sent_at: datetime
    sends: int = 0
    next_send_at: datetime | None = None
    closed: bool = False
    machine_answered: bool = False
    escalated: bool = False
    accounted: bool = False


class LifecycleState:
    def __init__(self, input: FundingInput) -> None:
        submission = input.submission
        self._input = input
        self._app = submission.payload
        self._rules = submission.payload.rules
        self._wid = workflow_id(submission.payload.application_id)
        self._correlation_id = submission.correlation_id
        self._cause = str(submission.event_id)
        self._zero = Money.zero(self._rules.currency)

        # Where the lifecycle is, and what it has said.
        self._stage = Stage.SUBMITTED
        self._stage_entered_at = workflow.now()
        self._stage_reason: str | None = None
        self._previous: Stage | None = None
        self._sequence = 0
        self._history: list[Transition] = []
        self._deadlines: dict[str, datetime] = {}
        self._events_published = 0
        self._outbox: list[Outgoing] = []
        self._notices: list[str] = []
        self._finished = False
        # The view last kept in the memo (``_show_lifecycle``): unchanged, it is not kept again.
        self._shown_view: dict[str, Any] | None = None
        # Escalations an officer has not acted on yet, and the commands escalated unanswered.
        self._waiting: dict[EscalationKind, None] = {}
        self._unanswered: dict[str, None] = {}

        # What arrived, kept until the lifecycle can use it.
        self._seen: dict[str, None] = {str(submission.event_id): None}
        self._partner: PartnerConfirmed | None = None
        self._partner_answers: dict[str, PartnerConfirmed] = {}
        self._reviews: dict[int, dict[str, ReviewCompleted]] = {}
        self._recusals: dict[int, dict[str, ReviewerRecused]] = {}
        self._short: dict[int, ReviewersShort] = {}
        self._answers: dict[str, Answer] = {}
        self._budget_freed = 0
        self._resubmissions: dict[int, ApplicationResubmitted] = {}
        self._amendments: dict[str, AmendmentRequested] = {}
        self._amendments_decided: dict[str, bool] = {}
        # Approved in a stage that cannot apply them; applied at the next one that can.
        self._approved_for_later: list[AmendmentRequested] = []
        self._reports: dict[int, ReportSubmitted] = {}
        self._report_reviews: dict[int, ReportReviewed] = {}
        self._report_review_revision = 0

        # Requests waiting to be taken up.
        self._withdrawal: Request[WithdrawRequest] | None = None
        self._override: Request[OverrideDecision] | None = None
        self._partner_decision: Request[PartnerDecision] | None = None
        self._amendment_decision: Request[AmendmentDecision] | None = None
        self._resend: Request[ResendCommand] | None = None

        # Commands sent, and what they moved.
        self._commands: dict[str, Command] = {}
        self._review_round = 0
        # The round whose reviewers disagree too much, while an officer decides it.
        self._spread_round: int | None = None
        self._added_reviewers: dict[int, int] = {}
        self._revision = 0
        self._requested = submission.payload.requested
        self._exchange_end = submission.payload.exchange_end
        self._exchange_wait_began: datetime | None = None
        self._award: Money | None = None
        self._tranches: list[Money] = []
        self._paid_tranches: dict[int, Money] = {}
        self._reserved: Money | None = None
        self._reservation_requested = False
        self._paid = self._zero
        self._refunded = self._zero
        self._actual_spending: Money | None = None

    # -- views ----------------------------------------------------------------------------

    def _answered(self, command: Command) -> bool:
        return command.command_id in self._answers

    def _answer_to(self, command: Command) -> Any:
        """The payload of the answer to ``command`` (which has been answered)."""
        return self._answers[command.command_id].payload

    def _outstanding(self) -> list[Command]:
        """Commands still waiting for an answer, which the lifecycle keeps sending."""
        return [
            command
            for command in self._commands.values()
            if not command.closed
            and command.resend_after is not None
            and not self._answered(command)
        ]

    def _undecided_amendments(self) -> list[AmendmentRequested]:
        return [
            amendment
            for amendment in self._amendments.values()
            if amendment.amendment_id not in self._amendments_decided
        ]

    def _withdrawal_due(self) -> bool:
        return self._withdrawal is not None and self._stage not in NOT_WITHDRAWABLE

    def _deadline_list(self) -> list[Deadline]:
        return [Deadline(name=name, due_at=due) for name, due in self._deadlines.items()]

    def _amounts(self) -> Amounts:
        def shown(amount: Money) -> Money | None:
            return amount if amount.amount_minor else None

        return Amounts(
            requested=self._requested,
            awarded=self._award,
            reserved=self._reserved,
            paid=shown(self._paid),
            refunded=shown(self._refunded),
        )

    def _standing(self, partner: PartnerCity) -> PartnerStanding:
        answer = self._partner_answers.get(partner.contact_email.lower())
        return PartnerStanding(
            name=partner.name,
            country=partner.country,
            confirmed=None if answer is None else answer.confirmed,
        )

    def _lifecycle_view(self) -> LifecycleView:
        return LifecycleView(
            application_id=self._app.application_id,
            member_id=self._app.member_id,
            program_code=self._rules.code,
            partners=[self._standing(partner) for partner in self._app.every_partner()],
            stage=self._stage,
            stage_entered_at=self._stage_entered_at,
            deadlines=self._deadline_list(),
            amounts=self._amounts(),
            history=list(self._history),
            outstanding_commands=[
                OutstandingCommand(
                    command_id=command.command_id,
                    step=command.step,
                    topic=command.topic.name,
                    sends=command.sends,
                    first_sent_at=command.first_sent_at,
                    next_send_at=command.next_send_at,
                )
                for command in self._outstanding()
            ],
            pending_amendments=[
                PendingAmendment(
                    amendment_id=amendment.amendment_id,
                    new_exchange_start=str(amendment.new_exchange_start)
                    if amendment.new_exchange_start
                    else None,
                    new_exchange_end=str(amendment.new_exchange_end)
                    if amendment.new_exchange_end
                    else None,
                    new_award=amendment.new_award,
                    cancel_exchange=amendment.cancel_exchange,
                    reason=amendment.reason,
                )
                for amendment in self._undecided_amendments()
            ],
            review_round=self._review_round,
            finished=self._finished,
        )
