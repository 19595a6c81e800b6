"""Lifecycle test support: stand-in services, a worker per test and the path runner.

``StandInServices`` replaces the publishing activity (same name) on the time-skipping
server: it records every command and event the workflow publishes and answers commands
the way the services would, by signalling the workflow from inside the activity (time
cannot skip while an activity runs, so an answer always beats the deadline it answers).
``Lifecycle`` runs one path from submission to its end; with
``GRANTFLOW_RECORD_HISTORIES=1`` it writes the path's history to ``histories/`` for the
replay test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.standins import (
    funds_released,
    funds_reserved,
    partner_confirmed,
    refund_requested,
    report_reviewed,
    tranche_settled,
)
from shared.contracts import topics
from shared.contracts.disbursement import (
    AwardAdjusted,
    DisbursementFailed,
    FundsRefused,
)
from shared.contracts.envelope import Envelope
from shared.contracts.intake import ApplicationSubmitted
from shared.contracts.money import Money
from shared.contracts.reporting import ReportSubmitted
from shared.contracts.topics import TOPICS_BY_NAME, Kind, Topic
from shared.contracts.workflows import (
    AdjustAward,
    ApplicationStatusChanged,
    EscalatedToOfficer,
    PayTranche,
    ReleaseFunds,
    RequestPartnerConfirmation,
    RequestRefund,
    RequestReport,
    RequestReportReview,
    RequestReviews,
    ReserveFunds,
)
from tests.support.workflows import answer, review, submission, usd
from workflows.funding.activities import PUBLISH
from workflows.funding.models import (
    FundingInput,
    FundingResult,
    Outgoing,
    Publication,
    Stage,
    workflow_id,
)
from workflows.funding.workflow import ExchangeFundingWorkflow

HISTORIES = Path(__file__).parent / "histories"
RECORD = os.environ.get("GRANTFLOW_RECORD_HISTORIES") == "1"
Handle = WorkflowHandle[Any, Any]


@dataclass
class Sent:
    """One message the workflow published."""

    kind: Literal["command", "event"]
    topic: str
    event_id: uuid.UUID
    payload: Any


Hook = Callable[[WorkflowHandle[Any, Any], Any], Awaitable[None]]


@dataclass
class StandInServices:
    """Intake, review, disbursement and reporting as the workflow sees them, scripted."""

    client: Client
    sent: list[Sent] = field(default_factory=list)
    partner: Literal["confirm", "decline", "never"] = "confirm"
    review_score: Callable[[int], int] = field(default=lambda _round: 4)
    # (round, reviewer index) -> score, for reviewers who disagree; overrides review_score.
    reviewer_score: Callable[[int, int], int] | None = None
    review_recommendation: Literal["approve", "decline", "revise"] = "approve"
    answer_reviews: bool = True
    refusals: int = 0
    payment_failures: int = 0
    report: Literal["prompt", "never"] = "prompt"
    actual_spending: Money | None = None
    report_outcomes: list[Literal["approved", "changes_requested"]] = field(default_factory=list)
    drop: dict[str, int] = field(default_factory=dict)
    duplicate_answers: bool = False
    on_stage: dict[str, Hook] = field(default_factory=dict)
    on_event: dict[str, Hook] = field(default_factory=dict)
    on_command: dict[str, Hook] = field(default_factory=dict)
    reserved: dict[str, Money] = field(default_factory=dict)
    paid: dict[str, Money] = field(default_factory=dict)
    _stages_seen: set[str] = field(default_factory=set)

    # -- what the tests look at -----------------------------------------------------------

    def commands(self, topic: Topic) -> list[Any]:
        return [sent.payload for sent in self.sent if sent.topic == topic.name]

    def events(self, topic: Topic) -> list[Any]:
        return self.commands(topic)

    def stages(self) -> list[str]:
        return [status.stage for status in self.events(topics.APPLICATION_STATUS_CHANGED)]

    # -- the activities -------------------------------------------------------------------

    @activity.defn(name=PUBLISH)
    async def publish(self, publication: Publication) -> None:
        handle = self.client.get_workflow_handle(str(activity.info().workflow_id))
        for message in publication.messages:
            if TOPICS_BY_NAME[message.topic].kind is Kind.COMMAND:
                await self._command(handle, message)
            else:
                await self._event(handle, message)

    async def _command(self, handle: WorkflowHandle[Any, Any], message: Outgoing) -> None:
        payload = self._record("command", message)
        if self.drop.get(message.topic, 0) > 0:
            self.drop[message.topic] -= 1
            return
        hook = self.on_command.get(message.topic)
        if hook is not None:
            await hook(handle, payload)
            return
        await self._answer(handle, message.application_id, payload)

    async def _event(self, handle: WorkflowHandle[Any, Any], message: Outgoing) -> None:
        payload = self._record("event", message)
        if isinstance(payload, ApplicationStatusChanged) and payload.stage not in self._stages_seen:
            self._stages_seen.add(payload.stage)
            hook = self.on_stage.get(payload.stage)
            if hook is not None:
                await hook(handle, payload)
        event_hook = self.on_event.get(message.topic)
        if event_hook is not None:
            await event_hook(handle, payload)

    def _record(self, kind: Literal["command", "event"], message: Outgoing) -> Any:
        topic = TOPICS_BY_NAME[message.topic]
        payload = topic.payload.model_validate(message.payload)
        self.sent.append(Sent(kind, message.topic, message.event_id, payload))
        return payload

    # -- the services' answers ------------------------------------------------------------

    async def _answer(
        self, handle: WorkflowHandle[Any, Any], application_id: str, command: Any
    ) -> None:
        wf = ExchangeFundingWorkflow

        async def send(signal: Any, payload: BaseModel, producer: str) -> None:
            envelope = answer(payload, application_id, producer)
            await handle.signal(signal, envelope)
            if self.duplicate_answers:
                # Redelivered by Kafka (same event id), then answered again by a service
                # that saw the command twice (new event id, same command id).
                await handle.signal(signal, envelope)
                await handle.signal(signal, answer(payload, application_id, producer))

        match command:
            case RequestPartnerConfirmation() if self.partner != "never":
                confirmed = partner_confirmed(command, confirmed=self.partner == "confirm")
                await send(wf.partner_confirmed, confirmed, "intake")
            case RequestReviews() if self.answer_reviews:
                for index in range(1, command.reviews_needed + 1):
                    score = (
                        self.review_score(command.round)
                        if self.reviewer_score is None
                        else self.reviewer_score(command.round, index)
                    )
                    completed = review(
                        application_id, command.round, index, score, self.review_recommendation
                    )
                    await send(wf.review_completed, completed, "review")
            case ReserveFunds():
                await self._reserve(send, command)
            case PayTranche():
                await self._pay(send, command)
            case ReleaseFunds():
                left = self.reserved.pop(application_id, Money.zero("USD"))
                paid = self.paid.get(application_id, Money.zero("USD"))
                released = left - paid if left > paid else Money.zero("USD")
                await send(wf.funds_released, funds_released(command, released), "disbursement")
            case RequestRefund():
                await send(wf.refund_requested, refund_requested(command), "disbursement")
            case AdjustAward():
                self.reserved[application_id] = command.new_award
                await send(
                    wf.award_adjusted,
                    AwardAdjusted(
                        application_id=application_id,
                        command_id=command.command_id,
                        new_award=command.new_award,
                        reserved=command.new_award,
                    ),
                    "disbursement",
                )
            case RequestReport() if self.report == "prompt":
                await self.submit_report(handle, command.awarded, revision=1)
            case RequestReportReview():
                outcome = self.report_outcomes.pop(0) if self.report_outcomes else "approved"
                comments = "" if outcome == "approved" else "add receipts"
                reviewed = report_reviewed(command, outcome, comments)
                await send(wf.report_reviewed, reviewed, "review")
            case _:
                pass

    async def _reserve(self, send: Any, command: ReserveFunds) -> None:
        wf = ExchangeFundingWorkflow
        if self.refusals > 0:
            self.refusals -= 1
            await send(
                wf.funds_refused,
                FundsRefused(
                    application_id=command.application_id,
                    command_id=command.command_id,
                    amount=command.amount,
                    available=usd(1_000),
                    reason="budget exhausted",
                ),
                "disbursement",
            )
            return
        self.reserved[command.application_id] = command.amount
        await send(wf.funds_reserved, funds_reserved(command), "disbursement")

    async def _pay(self, send: Any, command: PayTranche) -> None:
        wf = ExchangeFundingWorkflow
        if self.payment_failures > 0:
            self.payment_failures -= 1
            await send(
                wf.disbursement_failed,
                DisbursementFailed(
                    application_id=command.application_id,
                    command_id=command.command_id,
                    tranche=command.tranche,
                    instruction_id=command.idempotency_key,
                    reason="beneficiary bank rejected the transfer",
                    attempts=1,
                ),
                "disbursement",
            )
            return
        paid = self.paid.get(command.application_id, Money.zero("USD"))
        self.paid[command.application_id] = paid + command.amount
        await send(wf.disbursement_settled, tranche_settled(command), "disbursement")

    async def submit_report(
        self, handle: WorkflowHandle[Any, Any], awarded: Money, *, revision: int
    ) -> None:
        application_id = handle.id.removeprefix("application-")
        await handle.signal(
            ExchangeFundingWorkflow.report_submitted,
            answer(
                ReportSubmitted(
                    application_id=application_id,
                    report_id=f"{application_id}-report",
                    member_id="demo-member-1",
                    actual_spending=self.actual_spending or awarded,
                    revision=revision,
                ),
                application_id,
                "reporting",
            ),
        )


@contextlib.asynccontextmanager
async def funding_worker(
    client: Client,
    services: StandInServices,
    *,
    max_cached_workflows: int = 1000,
    task_queue: str | None = None,
) -> AsyncIterator[str]:
    task_queue = task_queue or f"funding-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ExchangeFundingWorkflow],
        activities=[services.publish],
        max_cached_workflows=max_cached_workflows,
    ):
        yield task_queue


async def start_lifecycle(
    client: Client, task_queue: str, application: Envelope[ApplicationSubmitted]
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        ExchangeFundingWorkflow.run,
        FundingInput(submission=application),
        id=workflow_id(application.application_id),
        task_queue=task_queue,
    )


async def reach(handle: WorkflowHandle[Any, Any], stage: Stage, timeout: float = 30.0) -> None:
    """Wait until the lifecycle is in ``stage``.

    Queries do not move the time-skipping server's clock: a stage behind a timer needs
    ``env.sleep`` (or a ``result()`` wait) first. The wait outlasts the 10 s workflow task
    timeout: with no workflow cache ("replay-every-task"), a query that lands while a task
    runs can make the SDK drop that task on eviction ("leftover buffered tasks when
    evicting run"), and the server hands it out again only when it times out.
    """
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + timeout
    while (await handle.query(ExchangeFundingWorkflow.stage)).stage is not stage:
        assert loop.time() < give_up_at, f"never reached {stage}"
        await asyncio.sleep(0.02)


# -- one lifecycle path -------------------------------------------------------------------


@dataclass
class Lifecycle:
    client: Client
    env: WorkflowEnvironment
    max_cached_workflows: int
    name: str

    async def application(self, **overrides: Any) -> Envelope[ApplicationSubmitted]:
        """An application dated by the server's clock, which earlier tests moved ahead."""
        today = (await self.env.get_current_time()).date()
        return submission(today=today, **overrides)

    async def run(
        self,
        services: StandInServices,
        application: Any = None,
        *,
        meanwhile: Callable[[Handle], Awaitable[None]] | None = None,
    ) -> FundingResult:
        application = application or await self.application()
        async with funding_worker(
            self.client, services, max_cached_workflows=self.max_cached_workflows
        ) as queue:
            handle = await start_lifecycle(self.client, queue, application)
            try:
                if meanwhile is not None:
                    await meanwhile(handle)
                result: FundingResult = await asyncio.wait_for(handle.result(), timeout=60)
            except BaseException:
                # Left running without its worker, the lifecycle's next task would stay
                # outstanding and hold the time-skipping clock for every later test of the
                # module: it ends with the test that failed.
                with contextlib.suppress(Exception):
                    await handle.terminate(reason="its test failed")
                raise
            if RECORD and self.max_cached_workflows:
                history = await handle.fetch_history()
                (HISTORIES / f"{self.name}.json").write_text(history.to_json())
        statuses = services.events(topics.APPLICATION_STATUS_CHANGED)
        assert [status.sequence for status in statuses] == list(range(1, len(statuses) + 1))
        assert statuses[-1].stage == result.stage
        assert statuses[-1].waiting_for_officer == [], "an ended lifecycle waits for nobody"
        return result


def escalations(services: StandInServices) -> list[EscalatedToOfficer]:
    return list(services.events(topics.ESCALATED_TO_OFFICER))


def officer_attention(services: StandInServices) -> list[tuple[str, bool, bool]]:
    """Each escalation as the attention list reads the events: its kind, whether a status
    event showed it waiting, and whether a later one showed it resolved."""
    statuses: list[ApplicationStatusChanged] = services.events(topics.APPLICATION_STATUS_CHANGED)
    story: list[tuple[str, bool, bool]] = []
    for escalation in escalations(services):
        raised = escalation.sequence or 0
        later = [status for status in statuses if status.sequence >= raised]
        shown = any(escalation.kind in status.waiting_for_officer for status in later)
        cleared = any(
            escalation.kind not in status.waiting_for_officer
            for status in later
            if status.sequence > raised
        )
        story.append((escalation.kind, shown, cleared))
    return story


def application_id(handle: Handle) -> str:
    return handle.id.removeprefix("application-")
