"""Lifecycle test support: applications, stand-in services and a worker per test.

``StandInServices`` replaces the two publishing activities (same names) on the
time-skipping server: it records every command and event the workflow publishes and
answers commands the way the services would, by signalling the workflow from inside the
activity (time cannot skip while an activity runs, so an answer always beats the deadline
it answers). ``KafkaStandIns`` does the same over Kafka for the end-to-end test and the
benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from pydantic import BaseModel
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

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
from shared.contracts.envelope import Envelope, deterministic_id, new_envelope
from shared.contracts.intake import (
    AmendmentRequested,
    ApplicationSubmitted,
    BudgetLine,
    PartnerCity,
    PartnerConfirmed,
)
from shared.contracts.money import Money
from shared.contracts.programs import ProgramRules, Rubric, RubricCriterion, Tranche
from shared.contracts.reporting import ReportSubmitted
from shared.contracts.review import CriterionScore, ReportReviewed, ReviewCompleted
from shared.contracts.topics import TOPICS_BY_NAME, Kind, Topic
from shared.contracts.workflows import (
    AdjustAward,
    ApplicationStatusChanged,
    PayTranche,
    ReleaseFunds,
    RequestPartnerConfirmation,
    RequestRefund,
    RequestReport,
    RequestReportReview,
    RequestReviews,
    ReserveFunds,
)
from shared.messaging.broker import create_broker
from shared.messaging.outbox import message_headers
from shared.settings import CommonSettings
from workflows.funding.activities import PUBLISH
from workflows.funding.models import FundingInput, Outgoing, Publication, Stage, workflow_id
from workflows.funding.search_attributes import SEARCH_ATTRIBUTES
from workflows.funding.workflow import ExchangeFundingWorkflow


def usd(amount: int) -> Money:
    """Whole dollars."""
    return Money(amount_minor=amount * 100, currency="USD")


RUBRIC = Rubric(
    criteria=[
        RubricCriterion(name="relevance", weight=3),
        RubricCriterion(name="feasibility", weight=2),
        RubricCriterion(name="impact", weight=1),
    ],
    pass_mark_bp=6_000,
)


def program_rules(today: date | None = None, **overrides: Any) -> ProgramRules:
    """A program whose window and exchange period are around ``today`` (default: real today).

    On the time-skipping server pass the server's date: its clock runs ahead of the real one.
    """
    today = today or datetime.now(UTC).date()
    values: dict[str, Any] = {
        "code": "AUPAP",
        "name": "African Urban Poverty Alleviation Program",
        "catalog_version": "2027.1",
        "cycle": "2027",
        "currency": "USD",
        "application_opens": today - timedelta(days=30),
        "application_closes": today + timedelta(days=30),
        "exchange_period_start": today,
        "exchange_period_end": today + timedelta(days=365),
        "eligible_partner_countries": ["KE", "GH", "TZ"],
        "applicant_countries": ["US"],
        "focus_areas": ["community_development", "business_and_trade"],
        "max_award": usd(20_000),
        "min_matching_bp": 2_500,
        "annual_budget": usd(500_000),
        "reviewers_needed": 2,
        "rubric": RUBRIC,
        "report_rubric": RUBRIC,
        "tranches": [
            Tranche(share_bp=7_000, due="after_award"),
            Tranche(share_bp=3_000, due="after_report_approved"),
        ],
        "partner_confirmation_period": timedelta(days=14),
        "review_period": timedelta(days=21),
        "revision_period": timedelta(days=30),
        "payment_settlement_period": timedelta(days=5),
        "payment_max_attempts": 3,
        "command_resend_after": timedelta(hours=1),
        "report_due_after": timedelta(days=30),
        "report_reminders_before": [timedelta(days=7), timedelta(days=1)],
        "report_reminders_after": [timedelta(days=1), timedelta(days=7)],
        "report_overdue_after": timedelta(days=14),
        "report_review_period": timedelta(days=14),
        "report_changes_period": timedelta(days=21),
    }
    values.update(overrides)
    return ProgramRules(**values)


def submission(
    application_id: str | None = None,
    *,
    rules: ProgramRules | None = None,
    requested: Money | None = None,
    exchange_start: date | None = None,
    exchange_end: date | None = None,
    today: date | None = None,
    **overrides: Any,
) -> Envelope[ApplicationSubmitted]:
    application_id = application_id or f"app-{uuid.uuid4().hex[:10]}"
    today = today or datetime.now(UTC).date()
    requested = requested or usd(10_000)
    values: dict[str, Any] = {
        "application_id": application_id,
        "member_id": "demo-member-1",
        "member_name": "Springfield",
        "member_country": "US",
        "program_code": "AUPAP",
        "cycle": "2027",
        "focus_area": "community_development",
        "title": "Clean water partnership",
        "summary": "Engineers from both cities rebuild a water kiosk network.",
        "partner": PartnerCity(
            name="Kisumu",
            country="KE",
            contact_name="Achieng Otieno",
            contact_email="partner@kisumu.example",
        ),
        "exchange_start": exchange_start or today + timedelta(days=60),
        "exchange_end": exchange_end or today + timedelta(days=70),
        "adults": 6,
        "youth": 2,
        "budget_lines": [
            BudgetLine(
                category="travel",
                description="flights",
                amount=requested,
                converted=requested,
            )
        ],
        "requested": requested,
        "matching_cash": usd(3_000),
        "matching_in_kind": usd(1_000),
        "contact_emails": ["grants@springfield.example"],
        "rules": rules or program_rules(today),
    }
    values.update(overrides)
    return new_envelope(
        ApplicationSubmitted(**values), producer="intake", application_id=application_id
    )


def answer(payload: BaseModel, application_id: str, producer: str) -> Envelope[Any]:
    return new_envelope(payload, producer=producer, application_id=application_id)


def scores(value: int) -> list[CriterionScore]:
    return [CriterionScore(criterion=criterion.name, score=value) for criterion in RUBRIC.criteria]


def review(
    application_id: str,
    round_: int,
    index: int,
    score: int,
    recommendation: Literal["approve", "decline", "revise"] = "approve",
) -> ReviewCompleted:
    return ReviewCompleted(
        application_id=application_id,
        round=round_,
        task_id=f"{application_id}-r{round_}-t{index}",
        reviewer_id=f"reviewer-{round_}-{index}",
        scores=scores(score),
        weighted_total_bp=score * 2_000,
        recommendation=recommendation,
    )


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
                await send(
                    wf.partner_confirmed,
                    PartnerConfirmed(
                        application_id=application_id,
                        partner_contact_email=command.partner_contact_email,
                        confirmed=self.partner == "confirm",
                    ),
                    "intake",
                )
            case RequestReviews() if self.answer_reviews:
                for index in range(1, command.reviews_needed + 1):
                    completed = review(
                        application_id,
                        command.round,
                        index,
                        self.review_score(command.round),
                        self.review_recommendation,
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
                await send(
                    wf.funds_released,
                    FundsReleased(
                        application_id=application_id,
                        command_id=command.command_id,
                        amount=released,
                        program_code=command.program_code,
                        cycle=command.cycle,
                    ),
                    "disbursement",
                )
            case RequestRefund():
                await send(
                    wf.refund_requested,
                    RefundRequested(
                        application_id=application_id,
                        command_id=command.command_id,
                        amount=command.amount,
                        reason=command.reason,
                    ),
                    "disbursement",
                )
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
                await send(
                    wf.report_reviewed,
                    ReportReviewed(
                        application_id=application_id,
                        report_id=command.report_id,
                        reviewer_id="reviewer-report",
                        outcome=outcome,
                        comments="" if outcome == "approved" else "add receipts",
                    ),
                    "review",
                )
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
        await send(
            wf.funds_reserved,
            FundsReserved(
                application_id=command.application_id,
                command_id=command.command_id,
                amount=command.amount,
            ),
            "disbursement",
        )

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
        await send(
            wf.disbursement_settled,
            DisbursementSettled(
                application_id=command.application_id,
                command_id=command.command_id,
                tranche=command.tranche,
                amount=command.amount,
                instruction_id=command.idempotency_key,
                finance_reference=f"fin-{command.command_id[:8]}",
            ),
            "disbursement",
        )

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


def amendment(application_id: str, amendment_id: str, **changes: Any) -> Envelope[Any]:
    return answer(
        AmendmentRequested(
            application_id=application_id,
            member_id="demo-member-1",
            amendment_id=amendment_id,
            reason=changes.pop("reason", "the partner moved the conference"),
            **changes,
        ),
        application_id,
        "intake",
    )


# -- Temporal plumbing for the tests ------------------------------------------------------


def with_pydantic(client: Client) -> Client:
    """The same connection (time skipping included) with the pydantic data converter."""
    config = client.config()
    config["data_converter"] = pydantic_data_converter
    return Client(**config)


async def register_search_attributes(client: Client) -> None:
    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    }
    with contextlib.suppress(Exception):  # already registered
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={name: kinds[kind] for name, kind in SEARCH_ATTRIBUTES.items()},
            )
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


# -- stand-in services over Kafka (end-to-end test, benchmark) ---------------------------


class KafkaStandIns:
    """Answers every command the workflow sends over Kafka, as the real services would.

    A repeated command (same command id) is answered again with the same event id. One
    consumer reads every command topic (one group join instead of eight on Tansu).
    Applications in ``silent_partners`` never get their partner's confirmation.
    """

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.broker, _ = create_broker(settings, client_id="stand-in-services")
        self.silent_partners: set[str] = set()
        self.commands_seen = 0
        handlers: dict[Topic, Callable[[Any], Awaitable[None]]] = {
            topics.REQUEST_PARTNER_CONFIRMATION: self._on_partner,
            topics.REQUEST_REVIEWS: self._on_reviews,
            topics.RESERVE_FUNDS: self._on_reserve,
            topics.PAY_TRANCHE: self._on_pay,
            topics.RELEASE_FUNDS: self._on_release,
            topics.REQUEST_REFUND: self._on_refund,
            topics.REQUEST_REPORT: self._on_report,
            topics.REQUEST_REPORT_REVIEW: self._on_report_review,
        }
        by_name = {topic.qualified(settings.topic_prefix): topic for topic in handlers}

        @self.broker.subscriber(
            *by_name,
            group_id=f"{settings.topic_prefix}stand-ins",
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        )
        async def on_command(message: KafkaMessage) -> None:
            record = message.raw_message
            assert not isinstance(record, tuple)
            topic = by_name[record.topic]
            envelope_type = Envelope[topic.payload]  # type: ignore[name-defined]
            self.commands_seen += 1
            await handlers[topic](envelope_type.model_validate_json(message.body))

    async def start(self) -> None:
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()

    async def _publish(self, topic: Topic, command: Envelope[Any], payload: BaseModel) -> None:
        command_id = getattr(command.payload, "command_id", str(command.event_id))
        event_id = deterministic_id(command_id, "answer", type(payload).__name__)
        if isinstance(payload, ReviewCompleted):
            event_id = deterministic_id(command_id, "answer", payload.task_id)
        envelope = new_envelope(
            payload,
            producer=topic.owner.value,
            application_id=command.application_id,
            event_id=event_id,
            causation=command,
        )
        await self.broker.publish(
            envelope.model_dump_json().encode(),
            topic=topic.qualified(self.settings.topic_prefix),
            key=command.application_id.encode(),
            headers=message_headers(envelope),
        )

    async def _on_partner(self, command: Envelope[RequestPartnerConfirmation]) -> None:
        if command.application_id in self.silent_partners:
            return
        await self._publish(
            topics.PARTNER_CONFIRMED,
            command,
            PartnerConfirmed(
                application_id=command.application_id,
                partner_contact_email=command.payload.partner_contact_email,
                confirmed=True,
            ),
        )

    async def _on_reviews(self, command: Envelope[RequestReviews]) -> None:
        for index in range(1, command.payload.reviews_needed + 1):
            await self._publish(
                topics.REVIEW_COMPLETED,
                command,
                review(command.application_id, command.payload.round, index, 4),
            )

    async def _on_reserve(self, command: Envelope[ReserveFunds]) -> None:
        await self._publish(
            topics.FUNDS_RESERVED,
            command,
            FundsReserved(
                application_id=command.application_id,
                command_id=command.payload.command_id,
                amount=command.payload.amount,
            ),
        )

    async def _on_pay(self, command: Envelope[PayTranche]) -> None:
        pay = command.payload
        await self._publish(
            topics.DISBURSEMENT_SETTLED,
            command,
            DisbursementSettled(
                application_id=command.application_id,
                command_id=pay.command_id,
                tranche=pay.tranche,
                amount=pay.amount,
                instruction_id=pay.idempotency_key,
                finance_reference=f"fin-{pay.command_id[:8]}",
            ),
        )

    async def _on_release(self, command: Envelope[ReleaseFunds]) -> None:
        release = command.payload
        await self._publish(
            topics.FUNDS_RELEASED,
            command,
            FundsReleased(
                application_id=command.application_id,
                command_id=release.command_id,
                amount=release.amount or Money.zero("USD"),
                program_code=release.program_code,
                cycle=release.cycle,
            ),
        )

    async def _on_refund(self, command: Envelope[RequestRefund]) -> None:
        refund = command.payload
        await self._publish(
            topics.REFUND_REQUESTED,
            command,
            RefundRequested(
                application_id=command.application_id,
                command_id=refund.command_id,
                amount=refund.amount,
                reason=refund.reason,
            ),
        )

    async def _on_report(self, command: Envelope[RequestReport]) -> None:
        await self._publish(
            topics.REPORT_SUBMITTED,
            command,
            ReportSubmitted(
                application_id=command.application_id,
                report_id=command.payload.report_id,
                member_id=command.payload.member_id,
                actual_spending=command.payload.awarded,
            ),
        )

    async def _on_report_review(self, command: Envelope[RequestReportReview]) -> None:
        await self._publish(
            topics.REPORT_REVIEWED,
            command,
            ReportReviewed(
                application_id=command.application_id,
                report_id=command.payload.report_id,
                reviewer_id="reviewer-report",
                outcome="approved",
            ),
        )


async def reach(handle: WorkflowHandle[Any, Any], stage: Stage, timeout: float = 10.0) -> None:
    """Wait until the lifecycle is in ``stage``.

    Queries do not move the time-skipping server's clock: a stage behind a timer needs
    ``env.sleep`` (or a ``result()`` wait) first.
    """
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + timeout
    while (await handle.query(ExchangeFundingWorkflow.stage)).stage is not stage:
        assert loop.time() < give_up_at, f"never reached {stage}"
        await asyncio.sleep(0.02)
