"""ExchangeFundingWorkflow: one application from submission to close-out.

Determinism: the only clock is ``workflow.now()``, the only side effects are the two
publishing activities, every id is derived from the workflow id and the step, and all
collections that are iterated are dicts or lists (never sets: their order depends on the
process's hash seed, so a replay in another process could issue commands differently).

Waiting is one loop, ``_wait``: it returns when a condition holds or a deadline passes,
re-sends every unanswered command when its own deadline passes (same command id, backing
off), and raises ``_Withdrawn`` when the applicant withdraws. Inputs that arrive before
the workflow can use them (a review before the request went out, an amendment before the
exchange is ahead) are kept in state, never dropped; duplicates are dropped by event id.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from shared.contracts import topics
    from shared.contracts.disbursement import (
        AwardAdjusted,
        DisbursementFailed,
        DisbursementSettled,
        FundsRefused,
        FundsReleased,
        FundsReserved,
        RefundRequested,
    )
    from shared.contracts.envelope import Envelope, deterministic_id
    from shared.contracts.intake import (
        AmendmentRequested,
        ApplicationResubmitted,
        ApplicationWithdrawn,
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
    from shared.contracts.workflows import (
        AdjustAward,
        Amounts,
        ApplicationStatusChanged,
        Deadline,
        EscalatedToOfficer,
        PayTranche,
        ReassignReview,
        ReleaseFunds,
        ReminderDue,
        ReportOverdue,
        RequestPartnerConfirmation,
        RequestRefund,
        RequestReport,
        RequestReportReview,
        RequestReviews,
        ReserveFunds,
    )
    from workflows.funding import domain
    from workflows.funding.activities import PUBLISH
    from workflows.funding.models import (
        AMENDABLE,
        NOT_WITHDRAWABLE,
        OVERRIDABLE,
        AmendmentDecision,
        FundingInput,
        FundingResult,
        LifecycleView,
        Outgoing,
        OutstandingCommand,
        OverrideDecision,
        PartnerDecision,
        PendingAmendment,
        Publication,
        ResendCommand,
        Stage,
        StageView,
        Transition,
        UpdateAnswer,
        WithdrawRequest,
        workflow_id,
    )
    from workflows.funding.search_attributes import MEMBER, PROGRAM, STAGE, STAGE_ENTERED_AT

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Kafka being down only delays the lifecycle: publishing is retried until it succeeds.
PUBLISH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)

Answer = Envelope[Any]
RequestT = TypeVar("RequestT")


class _Withdrawn(Exception):  # noqa: N818 - control flow, not an error
    """Raised out of any wait when the applicant withdraws; the run loop undoes what was done."""


@dataclass
class _Request(Generic[RequestT]):
    """An officer's request, held until the lifecycle takes it up or it is too late."""

    value: RequestT
    accepted: bool | None = None
    message: str = ""

    def accept(self, message: str) -> None:
        self.accepted, self.message = True, message

    def refuse(self, message: str) -> None:
        self.accepted, self.message = False, message


@dataclass
class _Command:
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


@dataclass
class _Timeline:
    at: datetime
    kind: str


@workflow.defn(name="ExchangeFundingWorkflow")
class ExchangeFundingWorkflow:
    @workflow.init
    def __init__(self, input: FundingInput) -> None:
        submission = input.submission
        self._input = input
        self._app = submission.payload
        self._rules = submission.payload.rules
        self._wid = workflow_id(submission.payload.application_id)
        self._correlation_id = submission.correlation_id
        self._cause = str(submission.event_id)
        currency = self._rules.currency
        self._zero = Money.zero(currency)

        self._stage = Stage.SUBMITTED
        self._stage_entered_at = workflow.now()
        self._stage_reason: str | None = None
        self._previous: Stage | None = None
        self._sequence = 0
        self._history: list[Transition] = []
        self._deadlines: dict[str, datetime] = {}
        self._events_published = 0
        self._outbox: list[Outgoing] = []
        self._finished = False

        # What arrived, kept until the lifecycle can use it.
        self._seen: dict[str, None] = {str(submission.event_id): None}
        self._partner: PartnerConfirmed | None = None
        self._reviews: dict[int, dict[str, ReviewCompleted]] = {}
        self._recusals: dict[int, dict[str, ReviewerRecused]] = {}
        self._short: dict[int, ReviewersShort] = {}
        self._answers: dict[str, Answer] = {}
        self._budget_freed = 0
        self._resubmissions: dict[int, ApplicationResubmitted] = {}
        self._amendments: dict[str, AmendmentRequested] = {}
        self._amendments_decided: dict[str, bool] = {}
        self._reports: dict[int, ReportSubmitted] = {}
        self._report_reviews: dict[int, ReportReviewed] = {}
        self._report_review_revision = 0
        self._withdrawal: _Request[WithdrawRequest] | None = None
        self._notices: list[str] = []

        # Officers' requests.
        self._override: _Request[OverrideDecision] | None = None
        self._partner_decision: _Request[PartnerDecision] | None = None
        self._amendment_decision: _Request[AmendmentDecision] | None = None
        self._resend: _Request[ResendCommand] | None = None

        # Commands sent and what they moved.
        self._commands: dict[str, _Command] = {}
        self._review_round = 0
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

    # -- the lifecycle ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: FundingInput) -> FundingResult:
        try:
            await self._lifecycle()
        except _Withdrawn:
            await self._undo_for_withdrawal()
        self._finished = True
        self._refuse_all_pending("the lifecycle has ended")
        self._flush_notices()
        await self._flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return FundingResult(
            application_id=self._app.application_id,
            stage=self._stage,
            reason=self._stage_reason,
            amounts=self._amounts(),
        )

    async def _lifecycle(self) -> None:
        self._enter(Stage.SCREENING, "checking eligibility against the program rules")
        problems = domain.screen(self._app)
        if problems:
            self._enter(Stage.INELIGIBLE, "; ".join(problems))
            return
        if not await self._partner_confirmation():
            return
        decision = await self._decide()
        if decision is None:
            return
        award = decision.award or domain.award_for(self._requested, self._rules)
        self._award = award
        self._tranches = domain.tranche_amounts(award, self._rules)
        self._enter(Stage.AWARDED, f"awarded {award}: {decision.reason}")
        if not await self._reserve_funds():
            return
        for index, tranche in enumerate(self._rules.tranches, start=1):
            if tranche.due == "after_award":
                await self._pay(index, self._tranches[index - 1], Stage.ADVANCE_PAYMENT)
        if not await self._await_exchange():
            return
        await self._collect_report()
        await self._review_report()
        await self._close_out()

    # -- 2. partner confirmation ----------------------------------------------------------

    async def _partner_confirmation(self) -> bool:
        due = workflow.now() + self._rules.partner_confirmation_period
        partner = self._app.partner
        self._enter(
            Stage.PARTNER_CONFIRMATION,
            f"waiting for {partner.name} to confirm its participation",
            deadlines={"partner_confirmation_due": due},
        )
        command = self._send(
            topics.REQUEST_PARTNER_CONFIRMATION,
            "partner-confirmation",
            RequestPartnerConfirmation(
                command_id=self._command_id("partner-confirmation"),
                application_id=self._app.application_id,
                partner_city=partner.name,
                partner_contact_email=partner.contact_email,
                due_at=due,
            ),
        )
        confirmed = await self._wait(lambda: self._partner is not None, until=due)
        command.closed = True
        if not confirmed:
            self._enter(
                Stage.PARTNER_UNCONFIRMED,
                f"{partner.name} did not confirm by {due:%Y-%m-%d %H:%M} UTC; "
                "a program officer decides",
            )
            self._escalate(
                "partner_unconfirmed", f"{partner.name} did not confirm participation by {due}"
            )
            await self._wait(
                lambda: self._partner is not None or self._partner_decision is not None
            )
            if self._partner is None and self._partner_decision is not None:
                request = self._partner_decision
                self._partner_decision = None
                if request.value.proceed:
                    request.accept("the application proceeds to review")
                    return True
                request.accept("the application is declined")
                self._enter(Stage.DECLINED, f"partner never confirmed: {request.value.reason}")
                return False
        assert self._partner is not None
        if not self._partner.confirmed:
            note = f": {self._partner.note}" if self._partner.note else ""
            self._enter(Stage.DECLINED, f"{partner.name} declined to take part{note}")
            return False
        return True

    # -- 3-4. review and decision ---------------------------------------------------------

    async def _decide(self) -> domain.Decision | None:
        """Review rounds, revisions and overrides until the application is awarded or ends."""
        decision: domain.Decision | None = None
        while True:
            if decision is None:
                self._review_round += 1
                decision = await self._review_round_outcome(self._review_round)
            if decision.outcome == "awarded":
                return decision
            if decision.outcome == "declined":
                decision = await self._declined(decision.reason)
                if decision is None:
                    return None
                continue
            outcome = await self._await_revision(decision.reason)
            if isinstance(outcome, domain.Decision):
                decision = outcome
            elif outcome == "lapsed":
                self._enter(
                    Stage.REVISION_LAPSED, "no revised application arrived before the deadline"
                )
                return None
            else:
                decision = None

    def _valid_reviews(self, round_: int) -> list[ReviewCompleted]:
        recused = self._recusals.get(round_, {})
        reviewers: dict[str, ReviewCompleted] = {}
        for review in self._reviews.get(round_, {}).values():
            if review.task_id not in recused and review.reviewer_id not in reviewers:
                reviewers[review.reviewer_id] = review
        return list(reviewers.values())[: self._rules.reviewers_needed]

    def _enough_reviews(self, round_: int) -> bool:
        return len(self._valid_reviews(round_)) >= self._rules.reviewers_needed

    def _heard_from_review(self, round_: int) -> bool:
        return round_ in self._reviews or round_ in self._recusals or round_ in self._short

    async def _review_round_outcome(self, round_: int) -> domain.Decision:
        rules = self._rules
        due = workflow.now() + rules.review_period
        needed = rules.reviewers_needed
        self._enter(
            Stage.REVIEW,
            f"review round {round_}: {needed} review(s) requested",
            deadlines={"review_due": due},
        )
        app = self._app
        command = self._send(
            topics.REQUEST_REVIEWS,
            "review",
            RequestReviews(
                command_id=self._command_id("review", str(round_)),
                application_id=app.application_id,
                round=round_,
                reviews_needed=needed,
                due_at=due,
                member_id=app.member_id,
                member_city=app.member_name,
                program_code=rules.code,
                focus_area=app.focus_area,
                partner_city=app.partner.name,
                partner_country=app.partner.country,
                blind_review=rules.blind_review,
                title=app.title,
                summary=self._summary(),
                requested=self._requested,
                rubric=rules.rubric,
            ),
        )
        handled_recusals: dict[str, None] = {}
        escalated_short = False
        timeouts = 0

        def new_recusals() -> list[ReviewerRecused]:
            return [
                recusal
                for task_id, recusal in self._recusals.get(round_, {}).items()
                if task_id not in handled_recusals
            ]

        def progress() -> bool:
            return (
                self._override is not None
                or self._enough_reviews(round_)
                or bool(new_recusals())
                or (round_ in self._short and not escalated_short)
                or (not command.closed and self._heard_from_review(round_))
            )

        while True:
            in_time = await self._wait(progress, until=None if escalated_short else due)
            if self._heard_from_review(round_):
                command.closed = True
            if self._override is not None:
                command.closed = True
                return self._take_override()
            if self._enough_reviews(round_):
                command.closed = True
                return domain.decide(
                    rules,
                    self._valid_reviews(round_),
                    requested=self._requested,
                    revisions_so_far=self._revision,
                )
            for recusal in new_recusals():
                handled_recusals[recusal.task_id] = None
                if recusal.replacement_task_id is None:
                    self._send(
                        topics.REASSIGN_REVIEW,
                        "reassign",
                        ReassignReview(
                            command_id=self._command_id("reassign", str(round_), recusal.task_id),
                            application_id=app.application_id,
                            round=round_,
                            reason=f"reviewer recused: {recusal.reason}",
                            task_id=recusal.task_id,
                        ),
                        expects_answer=False,
                    )
                due = max(due, workflow.now() + rules.review_period)
                self._enter(
                    self._stage,
                    f"a reviewer recused ({recusal.reason}); the task was reassigned",
                    deadlines={"review_due": due},
                )
            if round_ in self._short and not escalated_short:
                escalated_short = True
                short = self._short[round_]
                self._enter(
                    Stage.REVIEWERS_SHORT,
                    f"only {short.assigned} of {short.needed} eligible reviewers; "
                    "a program officer must step in",
                )
                self._escalate(
                    "reviewers_short",
                    f"round {round_}: {short.assigned} of {short.needed} reviewers available",
                )
            elif not in_time and not escalated_short:
                timeouts += 1
                if not command.closed:
                    # Nothing heard for the round at all: the request itself may be lost.
                    self._transmit(command)
                self._send(
                    topics.REASSIGN_REVIEW,
                    "reassign",
                    ReassignReview(
                        command_id=self._command_id("reassign", str(round_), f"late-{timeouts}"),
                        application_id=app.application_id,
                        round=round_,
                        reason="review deadline passed",
                        task_id=None,
                    ),
                    expects_answer=False,
                )
                due = workflow.now() + rules.review_period
                self._enter(
                    Stage.REVIEW,
                    "review deadline passed: late reviews reassigned",
                    deadlines={"review_due": due},
                )
                if timeouts == domain.REVIEW_TIMEOUTS_BEFORE_ESCALATION:
                    self._escalate(
                        "other", f"round {round_}: the review deadline passed {timeouts} times"
                    )

    def _take_override(self) -> domain.Decision:
        request = self._override
        assert request is not None
        self._override = None
        override = request.value
        award = None
        if override.outcome == "awarded":
            award = override.award or domain.award_for(self._requested, self._rules)
        request.accept(f"decision overridden: {override.outcome}")
        who = f" by {override.officer}" if override.officer else ""
        return domain.Decision(
            override.outcome, None, award, f"officer override{who}: {override.reason}"
        )

    async def _declined(self, reason: str) -> domain.Decision | None:
        """Declined; an officer may still override until the window closes."""
        window_end = workflow.now() + self._rules.review_period
        self._enter(Stage.DECLINED, reason, deadlines={"override_window_ends": window_end})
        if await self._wait(lambda: self._override is not None, until=window_end):
            return self._take_override()
        return None

    async def _await_revision(self, reason: str) -> domain.Decision | str:
        due = workflow.now() + self._rules.revision_period
        self._enter(
            Stage.REVISION_REQUESTED,
            reason,
            deadlines={"revision_due": due},
            action=f"revise and resubmit the application by {due:%Y-%m-%d %H:%M} UTC",
        )
        expected = self._revision + 1

        def resubmitted() -> bool:
            return any(revision >= expected for revision in self._resubmissions)

        def arrived() -> bool:
            return resubmitted() or self._override is not None

        halfway = workflow.now() + self._rules.revision_period / 2
        if not await self._wait(arrived, until=halfway):
            self._remind("revision_due", due, "the revised application is due soon")
        if not await self._wait(arrived, until=due):
            return "lapsed"
        if self._override is not None:
            return self._take_override()
        revision = max(revision for revision in self._resubmissions if revision >= expected)
        resubmission = self._resubmissions[revision]
        self._revision = revision
        self._requested = resubmission.requested
        return "resubmitted"

    def _summary(self) -> str:
        if self._revision in self._resubmissions:
            return self._resubmissions[self._revision].summary
        return self._app.summary

    # -- 5. funds -------------------------------------------------------------------------

    async def _reserve_funds(self) -> bool:
        award = self._award
        assert award is not None
        rules = self._rules
        self._enter(Stage.FUNDS_RESERVATION, f"reserving {award} against the budget")
        cycle_end = domain.end_of_day(rules.exchange_period_end)
        attempt = 0
        while True:
            attempt += 1
            self._reservation_requested = True
            command = self._send(
                topics.RESERVE_FUNDS,
                "reserve",
                ReserveFunds(
                    command_id=self._command_id("reserve", str(attempt)),
                    idempotency_key=f"{self._app.application_id}:reservation",
                    application_id=self._app.application_id,
                    program_code=rules.code,
                    cycle=rules.cycle,
                    amount=award,
                ),
                machine_answered=True,
            )
            await self._wait(functools.partial(self._answered, command))
            answer = self._answers[command.command_id].payload
            if isinstance(answer, FundsReserved):
                self._reserved = answer.amount
                return True
            available = answer.available if isinstance(answer, FundsRefused) else self._zero
            freed_before = self._budget_freed
            if self._stage is not Stage.WAITLISTED:
                self._enter(
                    Stage.WAITLISTED,
                    f"the program budget cannot cover {award} ({available} available); "
                    "waitlisted until funds are released or the cycle ends",
                    deadlines={"cycle_ends": cycle_end},
                )
            retry_at = workflow.now() + domain.resend_interval(rules.command_resend_after, attempt)
            freed = await self._wait(
                functools.partial(self._budget_freed_since, freed_before),
                until=min(cycle_end, retry_at),
            )
            if not freed and workflow.now() >= cycle_end:
                self._enter(
                    Stage.WAITLIST_EXPIRED, "the funding cycle ended before funds were available"
                )
                return False

    def _budget_freed_since(self, count: int) -> bool:
        return self._budget_freed > count

    # -- 6 and 10. payments ---------------------------------------------------------------

    async def _pay(self, tranche: int, amount: Money, stage: Stage) -> None:
        if amount.amount_minor <= 0:
            self._paid_tranches[tranche] = amount
            return
        rules = self._rules
        due = workflow.now() + rules.payment_settlement_period
        self._enter(
            stage, f"tranche {tranche} of {amount} instructed", deadlines={"settlement_due": due}
        )
        instruction = 0
        failures = 0
        while True:
            instruction += 1
            command = self._send(
                topics.PAY_TRANCHE,
                "pay",
                PayTranche(
                    command_id=self._command_id("pay", str(tranche), str(instruction)),
                    idempotency_key=f"{self._app.application_id}:{tranche}",
                    application_id=self._app.application_id,
                    program_code=rules.code,
                    cycle=rules.cycle,
                    tranche=tranche,
                    amount=amount,
                    payee_reference=self._app.member_id,
                    memo=f"{rules.code} {rules.cycle} {self._app.title} - tranche {tranche}",
                ),
                resend_after=rules.payment_settlement_period,
                machine_answered=True,
            )
            await self._wait(functools.partial(self._answered, command))
            failure = self._account_payment(command)
            if failure is None:
                return
            failures += 1
            if failures < rules.payment_max_attempts:
                due = workflow.now() + rules.payment_settlement_period
                self._enter(
                    stage,
                    f"payment of tranche {tranche} failed ({failure}); instructing it again",
                    deadlines={"settlement_due": due},
                )
                continue
            self._enter(
                Stage.PAYMENT_ESCALATED,
                f"payment of tranche {tranche} failed {failures} times ({failure}); "
                "a program officer must act",
            )
            self._escalate(
                "payment_failing", f"tranche {tranche} failed {failures} times: {failure}"
            )
            await self._wait(lambda: self._resend is not None)
            request = self._resend
            assert request is not None
            self._resend = None
            request.accept(f"tranche {tranche} instructed again")
            failures = 0
            due = workflow.now() + rules.payment_settlement_period
            self._enter(
                stage,
                f"a program officer asked to pay tranche {tranche} again",
                deadlines={"settlement_due": due},
            )

    def _account_payment(self, command: _Command) -> str | None:
        """Book a payment's outcome once; the failure reason, or None when it settled."""
        answer = self._answers[command.command_id].payload
        if isinstance(answer, DisbursementSettled):
            if not command.accounted and answer.tranche not in self._paid_tranches:
                self._paid_tranches[answer.tranche] = answer.amount
                self._paid = self._paid + answer.amount
            command.accounted = True
            return None
        command.accounted = True
        return answer.reason if isinstance(answer, DisbursementFailed) else "unexpected answer"

    async def _refund(self, amount: Money, step: str, reason: str) -> None:
        rules = self._rules
        command = self._send(
            topics.REQUEST_REFUND,
            "refund",
            RequestRefund(
                command_id=self._command_id("refund", step),
                idempotency_key=f"{self._app.application_id}:refund:{step}",
                application_id=self._app.application_id,
                program_code=rules.code,
                cycle=rules.cycle,
                amount=amount,
                reason=reason,
            ),
            machine_answered=True,
        )
        await self._wait(lambda: self._answered(command), interruptible=False)
        answer = self._answers[command.command_id].payload
        refunded = answer.amount if isinstance(answer, RefundRequested) else amount
        self._refunded = self._refunded + refunded

    async def _release(self, step: str, reason: str) -> None:
        rules = self._rules
        command = self._send(
            topics.RELEASE_FUNDS,
            "release",
            ReleaseFunds(
                command_id=self._command_id("release", step),
                idempotency_key=f"{self._app.application_id}:release:{step}",
                application_id=self._app.application_id,
                program_code=rules.code,
                cycle=rules.cycle,
                reason=reason,
                amount=None,
            ),
            machine_answered=True,
        )
        await self._wait(lambda: self._answered(command), interruptible=False)
        answer = self._answers[command.command_id].payload
        if isinstance(answer, FundsReleased) and self._reserved is not None:
            left = self._reserved - answer.amount
            self._reserved = left if left.amount_minor > 0 else self._zero

    # -- 7. the exchange ------------------------------------------------------------------

    def _exchange_ends_at(self) -> datetime:
        shortcut = self._rules.demo_exchange_ends_after
        if shortcut is not None and self._exchange_wait_began is not None:
            return self._exchange_wait_began + shortcut
        return domain.end_of_day(self._exchange_end)

    def _report_due_at(self) -> datetime:
        return self._exchange_ends_at() + self._rules.report_due_after

    async def _await_exchange(self) -> bool:
        """Wait for the exchange to end, applying approved amendments; False if cancelled."""
        reason = "the advance is paid; waiting for the exchange to end"
        if self._exchange_wait_began is None:
            self._exchange_wait_began = workflow.now()
        while True:
            ends_at = self._exchange_ends_at()
            self._enter(
                Stage.AWAITING_EXCHANGE,
                reason,
                deadlines={"exchange_ends": ends_at, "report_due": self._report_due_at()},
            )
            if not await self._wait(lambda: self._amendment_decision is not None, until=ends_at):
                return True
            request = self._amendment_decision
            assert request is not None
            self._amendment_decision = None
            decision = request.value
            amendment = self._amendments[decision.amendment_id]
            self._amendments_decided[amendment.amendment_id] = decision.approve
            if not decision.approve:
                request.accept(f"amendment {amendment.amendment_id} refused")
                reason = f"amendment {amendment.amendment_id} refused: {decision.reason}"
                continue
            request.accept(f"amendment {amendment.amendment_id} approved")
            if amendment.cancel_exchange:
                await self._cancel_exchange(amendment)
                return False
            reason = await self._apply_amendment(amendment)

    async def _apply_amendment(self, amendment: AmendmentRequested) -> str:
        changes: list[str] = []
        if amendment.new_exchange_end is not None:
            self._exchange_end = amendment.new_exchange_end
            changes.append(f"exchange now ends {amendment.new_exchange_end}")
        elif amendment.new_exchange_start is not None:
            changes.append(f"exchange now starts {amendment.new_exchange_start}")
        award = self._award
        new_award = amendment.new_award
        if new_award is not None and award is not None and new_award != award:
            rules = self._rules
            command = self._send(
                topics.ADJUST_AWARD,
                "adjust-award",
                AdjustAward(
                    command_id=self._command_id("adjust-award", amendment.amendment_id),
                    idempotency_key=f"{self._app.application_id}:award:{amendment.amendment_id}",
                    application_id=self._app.application_id,
                    program_code=rules.code,
                    cycle=rules.cycle,
                    new_award=new_award,
                    reason=amendment.reason,
                ),
                machine_answered=True,
            )
            await self._wait(lambda: self._answered(command))
            answer = self._answers[command.command_id].payload
            if isinstance(answer, AwardAdjusted):
                self._reserved = answer.reserved
            self._tranches = domain.rescheduled_tranches(
                self._tranches, set(self._paid_tranches), new_award, self._paid
            )
            self._award = new_award
            changes.append(f"award changed from {award} to {new_award}")
            excess = self._paid - self._refunded - new_award
            if excess.amount_minor > 0:
                await self._refund(
                    excess,
                    f"amendment-{amendment.amendment_id}",
                    f"award reduced to {new_award} below what was paid",
                )
        return f"amendment {amendment.amendment_id} approved: " + (
            "; ".join(changes) or "no change"
        )

    async def _cancel_exchange(self, amendment: AmendmentRequested) -> None:
        self._enter(Stage.CANCELLING, f"exchange cancelled: {amendment.reason}")
        paid = self._paid - self._refunded
        if paid.amount_minor > 0:
            await self._refund(paid, "cancelled", f"exchange cancelled: {amendment.reason}")
        await self._release("cancelled", f"exchange cancelled: {amendment.reason}")
        self._enter(
            Stage.CANCELLED,
            f"exchange cancelled: {amendment.reason}"
            + (f"; refund of {paid} requested" if paid.amount_minor > 0 else ""),
        )

    # -- 8-9. the report ------------------------------------------------------------------

    async def _collect_report(self) -> None:
        rules = self._rules
        due = self._report_due_at()
        timeline = sorted(
            [_Timeline(due - offset, "before") for offset in rules.report_reminders_before]
            + [_Timeline(due + offset, "after") for offset in rules.report_reminders_after]
            + [_Timeline(due + rules.report_overdue_after, "overdue")],
            key=lambda point: (point.at, point.kind == "overdue"),
        )
        self._enter(
            Stage.REPORT_DUE,
            "the exchange has ended: the post-exchange report is requested",
            deadlines={"report_due": due},
            action=f"submit the post-exchange report by {due:%Y-%m-%d %H:%M} UTC",
        )
        command = self._send(
            topics.REQUEST_REPORT,
            "report",
            RequestReport(
                command_id=self._command_id("report"),
                application_id=self._app.application_id,
                report_id=self._report_id,
                member_id=self._app.member_id,
                program_code=rules.code,
                due_on=due.date(),
                reminders_at=[point.at for point in timeline if point.kind != "overdue"],
                budget_lines=(
                    self._resubmissions[self._revision].budget_lines
                    if self._revision in self._resubmissions
                    else self._app.budget_lines
                ),
                awarded=self._award or self._zero,
            ),
        )

        def received() -> bool:
            return bool(self._reports)

        for point in timeline:
            if await self._wait(received, until=point.at):
                break
            if point.kind == "before":
                self._remind("report_due", due, f"the report is due on {due:%Y-%m-%d}")
            elif point.kind == "after":
                self._remind("report_overdue", due, f"the report was due on {due:%Y-%m-%d}")
            else:
                self._declare_report_overdue(due)
        else:
            await self._wait(received)
        command.closed = True

    @property
    def _report_id(self) -> str:
        return str(deterministic_id(self._wid, "report"))

    def _declare_report_overdue(self, due: datetime) -> None:
        self._publish(
            topics.REPORT_OVERDUE,
            ReportOverdue(
                application_id=self._app.application_id,
                report_id=self._report_id,
                member_id=self._app.member_id,
                due_on=due.date(),
            ),
            "report-overdue",
            str(self._sequence),
        )
        self._enter(
            Stage.REPORT_OVERDUE,
            "the report is overdue: the member loses good standing and the final tranche "
            "is on hold until it arrives",
            deadlines={"report_due": due},
            action="submit the post-exchange report now",
        )

    def _report_reviewed(self, revision: int) -> bool:
        return revision in self._report_reviews

    def _report_revised(self, revision: int) -> bool:
        return any(number > revision for number in self._reports)

    async def _review_report(self) -> None:
        rules = self._rules
        revision = max(self._reports)
        was_overdue = self._stage is Stage.REPORT_OVERDUE
        while True:
            report = self._reports[revision]
            due = workflow.now() + rules.report_review_period
            note = "; good standing restored" if was_overdue else ""
            self._enter(
                Stage.REPORT_REVIEW,
                f"report revision {revision} received{note}",
                deadlines={"report_review_due": due},
            )
            self._report_review_revision = revision
            command = self._send(
                topics.REQUEST_REPORT_REVIEW,
                "report-review",
                RequestReportReview(
                    command_id=self._command_id("report-review", str(revision)),
                    application_id=self._app.application_id,
                    report_id=report.report_id,
                    member_id=self._app.member_id,
                    program_code=rules.code,
                    due_at=due,
                    rubric=rules.report_rubric,
                ),
            )
            await self._wait(functools.partial(self._report_reviewed, revision))
            command.closed = True
            review = self._report_reviews[revision]
            if review.outcome == "approved":
                self._actual_spending = report.actual_spending
                return
            changes_due = workflow.now() + rules.report_changes_period
            self._enter(
                Stage.REPORT_CHANGES_REQUESTED,
                f"changes requested: {review.comments or 'see the reviewer comments'}",
                deadlines={"report_changes_due": changes_due},
                action=f"revise the report by {changes_due:%Y-%m-%d %H:%M} UTC",
            )

            was_overdue = False
            revised = functools.partial(self._report_revised, revision)
            if not await self._wait(revised, until=changes_due):
                self._remind("report_changes_due", changes_due, "the revised report is overdue")
                self._declare_report_overdue(changes_due)
                was_overdue = True
                await self._wait(revised)
            revision = max(number for number in self._reports if number > revision)

    # -- 10. close-out --------------------------------------------------------------------

    async def _close_out(self) -> None:
        award = self._award
        assert award is not None
        final = {
            index: amount
            for index, amount in enumerate(self._tranches, start=1)
            if index not in self._paid_tranches
        }
        plan = domain.close_out(
            award=award,
            paid=self._paid,
            refunded=self._refunded,
            final_tranches=final,
            actual_spending=self._actual_spending,
        )
        for index, amount in plan.final_tranches.items():
            await self._pay(index, amount, Stage.FINAL_PAYMENT)
        self._enter(Stage.CLOSING, "settling what was not spent")
        if plan.refund.amount_minor > 0:
            await self._refund(
                plan.refund, "underspend", f"actual spending {self._actual_spending} below paid"
            )
        if self._reserved is not None and self._reserved > self._paid:
            await self._release("close-out", "close-out: unspent funds")
        self._enter(Stage.CLOSED, "the grant is closed")

    # -- withdrawal -----------------------------------------------------------------------

    def _withdrawal_due(self) -> bool:
        return self._withdrawal is not None and self._stage not in NOT_WITHDRAWABLE

    async def _undo_for_withdrawal(self) -> None:
        request = self._withdrawal
        assert request is not None
        self._withdrawal = None
        reason = request.value.reason
        request.accept("the application is being withdrawn")
        self._enter(Stage.WITHDRAWING, f"withdrawn: {reason}")
        # A payment in flight decides what must be refunded: wait for its outcome.
        for command in list(self._commands.values()):
            if command.step == "pay" and not command.accounted:
                if not self._answered(command) and not command.closed:
                    await self._wait(
                        functools.partial(self._answered, command),
                        until=workflow.now() + self._rules.payment_settlement_period,
                        interruptible=False,
                    )
                if self._answered(command):
                    self._account_payment(command)
        for command in self._commands.values():
            command.closed = True
        paid = self._paid - self._refunded
        if paid.amount_minor > 0:
            await self._refund(paid, "withdrawn", f"application withdrawn: {reason}")
        if self._reservation_requested:
            await self._release("withdrawn", f"application withdrawn: {reason}")
        self._enter(
            Stage.WITHDRAWN,
            f"withdrawn: {reason}"
            + (f"; refund of {paid} requested" if paid.amount_minor > 0 else ""),
        )

    # -- waiting and re-sending -----------------------------------------------------------

    def _answered(self, command: _Command) -> bool:
        return command.command_id in self._answers

    def _outstanding(self) -> list[_Command]:
        return [
            command
            for command in self._commands.values()
            if not command.closed
            and command.resend_after is not None
            and not self._answered(command)
        ]

    def _needs_attention(self, interruptible: bool) -> bool:
        return (
            (interruptible and self._withdrawal_due())
            or bool(self._notices)
            or (self._resend is not None and self._stage is not Stage.PAYMENT_ESCALATED)
        )

    async def _wait(
        self,
        done: Callable[[], bool],
        *,
        until: datetime | None = None,
        interruptible: bool = True,
    ) -> bool:
        """Wait until ``done()`` (True) or ``until`` passes (False), keeping commands alive."""
        while True:
            self._flush_notices()
            await self._flush()
            if interruptible and self._withdrawal_due():
                raise _Withdrawn
            if done():
                return True
            now = workflow.now()
            if until is not None and now >= until:
                return False
            self._resend_due(now)
            await self._flush()
            wake = until
            for command in self._outstanding():
                if command.next_send_at is not None and (
                    wake is None or command.next_send_at < wake
                ):
                    wake = command.next_send_at
            timeout = None if wake is None else wake - workflow.now()
            if timeout is not None and timeout <= timedelta(0):
                continue
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: done() or self._needs_attention(interruptible), timeout=timeout
                )

    def _resend_due(self, now: datetime) -> None:
        request = self._resend
        if request is not None and self._stage is not Stage.PAYMENT_ESCALATED:
            self._resend = None
            step = request.value.step
            chosen = [c for c in self._outstanding() if step is None or c.step == step]
            for command in chosen:
                self._transmit(command)
            if chosen:
                request.accept("re-sent: " + ", ".join(c.step for c in chosen))
            else:
                request.refuse("no command is waiting for an answer any more")
        for command in self._outstanding():
            if command.next_send_at is not None and command.next_send_at <= now:
                self._transmit(command)

    def _flush_notices(self) -> None:
        while self._notices:
            notice = self._notices.pop(0)
            self._enter(self._stage, notice, deadlines=dict(self._deadlines))

    # -- sending ----------------------------------------------------------------------------

    def _command_id(self, step: str, *parts: str) -> str:
        return str(deterministic_id(self._wid, step, *parts))

    def _send(
        self,
        topic: Topic,
        step: str,
        payload: BaseModel,
        *,
        resend_after: timedelta | None = None,
        expects_answer: bool = True,
        machine_answered: bool = False,
    ) -> _Command:
        """Send a command (its id comes from ``_command_id``) and keep it alive until answered."""
        command_id = str(getattr(payload, "command_id"))  # noqa: B009 - every command has one
        command = self._commands.get(command_id)
        if command is None:
            command = _Command(
                command_id=command_id,
                step=step,
                topic=topic,
                payload=payload.model_dump(mode="json"),
                resend_after=(resend_after or self._rules.command_resend_after)
                if expects_answer
                else None,
                first_sent_at=workflow.now(),
                machine_answered=machine_answered,
                # A service answers at once; a person (partner, reviewer, member) may take
                # weeks, so only the former is worth an officer's attention when silent.
                escalated=not machine_answered,
            )
            self._commands[command_id] = command
        self._transmit(command)
        return command

    def _transmit(self, command: _Command) -> None:
        command.sends += 1
        # Each send is a new message (a consumer's inbox would drop a copy of the first one,
        # and with it the chance to answer again); the command id inside stays the same.
        event_id = deterministic_id(command.command_id, "send", str(command.sends))
        self._outbox.append(self._outgoing(command.topic, event_id, command.payload))
        if command.resend_after is None:
            return
        if not command.machine_answered and command.sends >= domain.SENDS_TO_PEOPLE:
            # A person's answer may take weeks: enough copies went out against a lost
            # message, and the stage's own deadline takes over from here.
            command.next_send_at = None
        else:
            command.next_send_at = workflow.now() + domain.resend_interval(
                command.resend_after, command.sends
            )
            if command.sends >= domain.SENDS_BEFORE_ESCALATION and not command.escalated:
                command.escalated = True
                self._escalate(
                    "command_unanswered",
                    f"{command.step} command {command.command_id} sent {command.sends} times "
                    "without an answer",
                )

    def _outgoing(self, topic: Topic, event_id: Any, payload: dict[str, Any]) -> Outgoing:
        return Outgoing(
            topic=topic.name,
            event_id=event_id,
            application_id=self._app.application_id,
            correlation_id=self._correlation_id,
            causation_id=self._cause,
            occurred_at=workflow.now(),
            payload=payload,
        )

    def _publish(self, topic: Topic, payload: BaseModel, *parts: str) -> None:
        event_id = deterministic_id(self._wid, *parts)
        self._outbox.append(self._outgoing(topic, event_id, payload.model_dump(mode="json")))

    async def _flush(self) -> None:
        """Publish what this step produced, in order, with one activity."""
        if not self._outbox:
            return
        messages, self._outbox = self._outbox, []
        await workflow.execute_activity(
            PUBLISH,
            Publication(messages=messages),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=PUBLISH_RETRY,
        )

    def _escalate(self, kind: Any, reason: str) -> None:
        self._events_published += 1
        self._publish(
            topics.ESCALATED_TO_OFFICER,
            EscalatedToOfficer(
                application_id=self._app.application_id,
                stage=self._stage.value,
                reason=reason,
                kind=kind,
            ),
            "escalation",
            str(self._events_published),
        )

    def _remind(self, about: Any, due: datetime, message: str) -> None:
        self._events_published += 1
        self._publish(
            topics.REMINDER_DUE,
            ReminderDue(
                application_id=self._app.application_id,
                member_id=self._app.member_id,
                about=about,
                due_at=due,
                message=message,
            ),
            "reminder",
            str(self._events_published),
        )

    def _enter(
        self,
        stage: Stage,
        reason: str | None = None,
        *,
        deadlines: dict[str, datetime] | None = None,
        action: str | None = None,
    ) -> None:
        """A transition: state, history, search attributes and the status event."""
        now = workflow.now()
        previous = self._stage
        if stage is not previous:
            self._previous = previous
            self._stage_entered_at = now
        self._stage = stage
        self._stage_reason = reason
        self._deadlines = dict(deadlines or {})
        self._sequence += 1
        self._history.append(
            Transition(
                sequence=self._sequence, stage=stage, previous=previous, at=now, reason=reason
            )
        )
        self._refuse_out_of_stage()
        if self._input.search_attributes:
            workflow.upsert_search_attributes(
                [
                    PROGRAM.value_set(self._rules.code),
                    MEMBER.value_set(self._app.member_id),
                    STAGE.value_set(stage.value),
                    STAGE_ENTERED_AT.value_set(self._stage_entered_at),
                ]
            )
        self._publish(
            topics.APPLICATION_STATUS_CHANGED,
            ApplicationStatusChanged(
                application_id=self._app.application_id,
                member_id=self._app.member_id,
                program_code=self._rules.code,
                stage=stage.value,
                previous_stage=previous.value,
                reason=reason,
                deadlines=self._deadline_list(),
                action_required=action,
                amounts=self._amounts(),
                sequence=self._sequence,
            ),
            "status",
            str(self._sequence),
        )

    def _refuse_out_of_stage(self) -> None:
        stage = self._stage
        if self._override is not None and stage not in OVERRIDABLE:
            self._override.refuse(f"the decision can no longer be overridden in stage {stage}")
            self._override = None
        if self._partner_decision is not None and stage is not Stage.PARTNER_UNCONFIRMED:
            self._partner_decision.refuse(f"the partner question is settled (stage {stage})")
            self._partner_decision = None
        if self._amendment_decision is not None and stage not in AMENDABLE:
            self._amendment_decision.refuse(f"amendments cannot be applied in stage {stage}")
            self._amendment_decision = None
        if self._withdrawal is not None and stage in NOT_WITHDRAWABLE:
            if stage is not Stage.WITHDRAWING:
                message = f"withdrawal refused: too late in stage {stage}"
                self._withdrawal.refuse(message)
                self._notices.append(message)
            self._withdrawal = None

    def _refuse_all_pending(self, message: str) -> None:
        for request in (
            self._override,
            self._partner_decision,
            self._amendment_decision,
            self._resend,
            self._withdrawal,
        ):
            if request is not None and request.accepted is None:
                request.refuse(message)
        self._override = self._partner_decision = self._amendment_decision = None
        self._resend = self._withdrawal = None

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

    # -- signals: events from the other services, through the bridge -------------------

    def _fresh(self, event: Envelope[Any]) -> bool:
        """First sight of this event for this application (duplicates change nothing)."""
        key = str(event.event_id)
        if key in self._seen:
            return False
        self._seen[key] = None
        return True

    def _mine(self, event: Envelope[Any]) -> bool:
        return bool(event.application_id == self._app.application_id) and self._fresh(event)

    @workflow.signal
    def partner_confirmed(self, event: Envelope[PartnerConfirmed]) -> None:
        if self._mine(event) and self._partner is None:
            self._partner = event.payload

    @workflow.signal
    def review_completed(self, event: Envelope[ReviewCompleted]) -> None:
        if self._mine(event):
            review = event.payload
            self._reviews.setdefault(review.round, {}).setdefault(review.task_id, review)

    @workflow.signal
    def reviewer_recused(self, event: Envelope[ReviewerRecused]) -> None:
        # A recusal from a report review is the review service's to staff, not a round's.
        if self._mine(event) and event.payload.report_id is None:
            recusal = event.payload
            self._recusals.setdefault(recusal.round, {}).setdefault(recusal.task_id, recusal)

    @workflow.signal
    def reviewers_short(self, event: Envelope[ReviewersShort]) -> None:
        if self._mine(event) and event.payload.report_id is None:
            self._short.setdefault(event.payload.round, event.payload)

    def _answer(self, event: Envelope[Any], command_id: str) -> None:
        if self._mine(event):
            self._answers.setdefault(command_id, event)

    @workflow.signal
    def funds_reserved(self, event: Envelope[FundsReserved]) -> None:
        self._answer(event, event.payload.command_id)

    @workflow.signal
    def funds_refused(self, event: Envelope[FundsRefused]) -> None:
        self._answer(event, event.payload.command_id)

    @workflow.signal
    def funds_released(self, event: Envelope[FundsReleased]) -> None:
        """Our own release's answer, or another application's: budget may be free again."""
        released = event.payload
        if event.application_id == self._app.application_id:
            self._answer(event, released.command_id)
        elif (
            released.program_code == self._rules.code
            and released.cycle == self._rules.cycle
            and self._fresh(event)
        ):
            self._budget_freed += 1

    @workflow.signal
    def award_adjusted(self, event: Envelope[AwardAdjusted]) -> None:
        self._answer(event, event.payload.command_id)

    @workflow.signal
    def disbursement_settled(self, event: Envelope[DisbursementSettled]) -> None:
        self._answer(event, event.payload.command_id)

    @workflow.signal
    def disbursement_failed(self, event: Envelope[DisbursementFailed]) -> None:
        self._answer(event, event.payload.command_id)

    @workflow.signal
    def refund_requested(self, event: Envelope[RefundRequested]) -> None:
        self._answer(event, event.payload.command_id)

    @workflow.signal
    def resubmitted(self, event: Envelope[ApplicationResubmitted]) -> None:
        if self._mine(event):
            self._resubmissions.setdefault(event.payload.revision, event.payload)

    @workflow.signal
    def amendment_requested(self, event: Envelope[AmendmentRequested]) -> None:
        if self._mine(event):
            self._amendments.setdefault(event.payload.amendment_id, event.payload)

    @workflow.signal
    def report_submitted(self, event: Envelope[ReportSubmitted]) -> None:
        if self._mine(event):
            self._reports.setdefault(event.payload.revision, event.payload)

    @workflow.signal
    def report_reviewed(self, event: Envelope[ReportReviewed]) -> None:
        if self._mine(event):
            self._report_reviews.setdefault(self._report_review_revision, event.payload)

    @workflow.signal
    def withdrawn(self, event: Envelope[ApplicationWithdrawn]) -> None:
        """The applicant withdrew through intake; the answer is a status event."""
        if not self._mine(event):
            return
        if self._stage in (Stage.WITHDRAWING, Stage.WITHDRAWN):
            return
        if self._stage in NOT_WITHDRAWABLE or self._finished:
            self._notices.append(f"withdrawal refused: too late in stage {self._stage}")
        elif self._withdrawal is None:
            self._withdrawal = _Request(
                WithdrawRequest(reason=event.payload.reason, requested_by=event.payload.member_id)
            )

    # -- updates: officers' actions, checked against the lifecycle -----------------------

    async def _answer_when_done(self, request: _Request[Any]) -> UpdateAnswer:
        await workflow.wait_condition(lambda: request.accepted is not None)
        if not request.accepted:
            raise ApplicationError(request.message, type="Refused", non_retryable=True)
        return UpdateAnswer(stage=self._stage, message=request.message)

    @workflow.update
    async def override_decision(self, decision: OverrideDecision) -> UpdateAnswer:
        request = _Request(decision)
        self._override = request
        return await self._answer_when_done(request)

    @override_decision.validator
    def _check_override(self, decision: OverrideDecision) -> None:
        if self._stage not in OVERRIDABLE:
            raise ValueError(
                f"a decision can be overridden only during review or after it; "
                f"the application is in stage {self._stage}"
            )
        if self._override is not None:
            raise ValueError("another override is being applied")
        if decision.outcome == "declined" and self._stage is Stage.DECLINED:
            raise ValueError("the application is already declined")
        if decision.outcome == "revision_requested" and self._stage is Stage.REVISION_REQUESTED:
            raise ValueError("a revision is already requested")
        if decision.award is not None:
            self._check_award(decision.award)
            if decision.outcome != "awarded":
                raise ValueError("an award amount goes only with outcome 'awarded'")

    def _check_award(self, award: Money) -> None:
        rules = self._rules
        if award.currency != rules.currency:
            raise ValueError(f"the award must be in {rules.currency}, not {award.currency}")
        if award.amount_minor <= 0:
            raise ValueError("the award must be positive")
        if award > rules.max_award:
            raise ValueError(f"the award exceeds the program maximum {rules.max_award}")

    @workflow.update
    async def approve_amendment(self, decision: AmendmentDecision) -> UpdateAnswer:
        request = _Request(decision)
        self._amendment_decision = request
        return await self._answer_when_done(request)

    @approve_amendment.validator
    def _check_amendment(self, decision: AmendmentDecision) -> None:
        amendment = self._amendments.get(decision.amendment_id)
        if amendment is None:
            raise ValueError(f"no amendment {decision.amendment_id} was requested")
        if decision.amendment_id in self._amendments_decided:
            raise ValueError(f"amendment {decision.amendment_id} is already decided")
        if self._stage not in AMENDABLE:
            raise ValueError(
                f"amendments are decided while the exchange is ahead; stage is {self._stage}"
            )
        if self._amendment_decision is not None:
            raise ValueError("another amendment decision is being applied")
        if not decision.approve:
            return
        if amendment.new_award is not None:
            self._check_award(amendment.new_award)
        if amendment.new_exchange_end is not None:
            rules = self._rules
            start = amendment.new_exchange_start or self._app.exchange_start
            if amendment.new_exchange_end < start:
                raise ValueError("the amended exchange would end before it starts")
            if amendment.new_exchange_end > rules.exchange_period_end:
                raise ValueError(
                    f"the exchange must end by {rules.exchange_period_end} under {rules.code}"
                )
            if domain.end_of_day(amendment.new_exchange_end) <= workflow.now():
                raise ValueError("the amended end date has already passed")

    @workflow.update
    async def decide_partner(self, decision: PartnerDecision) -> UpdateAnswer:
        request = _Request(decision)
        self._partner_decision = request
        return await self._answer_when_done(request)

    @decide_partner.validator
    def _check_partner_decision(self, decision: PartnerDecision) -> None:
        if self._stage is not Stage.PARTNER_UNCONFIRMED:
            raise ValueError(
                f"there is no unconfirmed partner to decide on; stage is {self._stage}"
            )
        if self._partner_decision is not None:
            raise ValueError("a partner decision is already being applied")

    @workflow.update
    async def resend_command(self, request: ResendCommand) -> UpdateAnswer:
        pending = _Request(request)
        self._resend = pending
        return await self._answer_when_done(pending)

    @resend_command.validator
    def _check_resend(self, request: ResendCommand) -> None:
        if self._resend is not None:
            raise ValueError("a re-send is already under way")
        if self._stage is Stage.PAYMENT_ESCALATED and request.step in (None, "pay"):
            return
        waiting = [c for c in self._outstanding() if request.step in (None, c.step)]
        if not waiting:
            which = f" of step {request.step}" if request.step else ""
            raise ValueError(f"no command{which} is waiting for an answer in stage {self._stage}")

    @workflow.update
    async def withdraw(self, request: WithdrawRequest) -> UpdateAnswer:
        pending = _Request(request)
        self._withdrawal = pending
        return await self._answer_when_done(pending)

    @withdraw.validator
    def _check_withdraw(self, request: WithdrawRequest) -> None:
        if self._stage in NOT_WITHDRAWABLE:
            raise ValueError(f"too late to withdraw: the application is in stage {self._stage}")
        if self._withdrawal is not None:
            raise ValueError("the application is already being withdrawn")

    # -- queries --------------------------------------------------------------------------

    @workflow.query
    def stage(self) -> StageView:
        return StageView(
            stage=self._stage,
            entered_at=self._stage_entered_at,
            previous=self._previous,
            reason=self._stage_reason,
        )

    @workflow.query
    def deadlines(self) -> list[Deadline]:
        return self._deadline_list()

    @workflow.query
    def history(self) -> list[Transition]:
        return list(self._history)

    @workflow.query
    def amounts(self) -> Amounts:
        return self._amounts()

    @workflow.query
    def lifecycle(self) -> LifecycleView:
        return LifecycleView(
            application_id=self._app.application_id,
            member_id=self._app.member_id,
            program_code=self._rules.code,
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
                for amendment in self._amendments.values()
                if amendment.amendment_id not in self._amendments_decided
            ],
            review_round=self._review_round,
            finished=self._finished,
        )
