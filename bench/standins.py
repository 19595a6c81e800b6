"""Stand-ins for the four services, answering the workflow's commands over Kafka as the
services would, and the applications they are given: the lifecycle benchmark drives the
real worker and bridge with them, and the end-to-end tests reuse them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from pydantic import BaseModel

from shared.contracts import topics
from shared.contracts.disbursement import (
    DisbursementSettled,
    FundsReleased,
    FundsReserved,
    RefundRequested,
)
from shared.contracts.envelope import Envelope, deterministic_id, new_envelope
from shared.contracts.intake import (
    ApplicationSubmitted,
    BudgetLine,
    PartnerCity,
    PartnerConfirmed,
)
from shared.contracts.money import Money
from shared.contracts.programs import ProgramRules, Rubric, RubricCriterion, Tranche
from shared.contracts.reporting import ReportSubmitted
from shared.contracts.review import CriterionScore, ReportReviewed, ReviewCompleted
from shared.contracts.topics import Topic
from shared.contracts.workflows import (
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


async def publish(broker: KafkaBroker, prefix: str, topic: Topic, *events: Envelope[Any]) -> None:
    """Publish as the services do: each envelope one message keyed by its application."""
    for event in events:
        await broker.publish(
            event.model_dump_json().encode(),
            topic=topic.qualified(prefix),
            key=event.application_id.encode(),
            headers=message_headers(event),
        )


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


# -- what a service answers a command with when all goes well ----------------------------
# (the Kafka stand-ins below, and the time-skipping ones of tests/workflows)


def partner_confirmed(request: RequestPartnerConfirmation, *, confirmed: bool) -> PartnerConfirmed:
    return PartnerConfirmed(
        application_id=request.application_id,
        partner_contact_email=request.partner_contact_email,
        confirmed=confirmed,
    )


def funds_reserved(reserve: ReserveFunds) -> FundsReserved:
    return FundsReserved(
        application_id=reserve.application_id,
        command_id=reserve.command_id,
        amount=reserve.amount,
    )


def tranche_settled(pay: PayTranche) -> DisbursementSettled:
    return DisbursementSettled(
        application_id=pay.application_id,
        command_id=pay.command_id,
        tranche=pay.tranche,
        amount=pay.amount,
        instruction_id=pay.idempotency_key,
        finance_reference=f"fin-{pay.command_id[:8]}",
    )


def funds_released(release: ReleaseFunds, amount: Money) -> FundsReleased:
    return FundsReleased(
        application_id=release.application_id,
        command_id=release.command_id,
        amount=amount,
        program_code=release.program_code,
        cycle=release.cycle,
    )


def refund_requested(refund: RequestRefund) -> RefundRequested:
    return RefundRequested(
        application_id=refund.application_id,
        command_id=refund.command_id,
        amount=refund.amount,
        reason=refund.reason,
    )


def report_reviewed(
    request: RequestReportReview,
    outcome: Literal["approved", "changes_requested"] = "approved",
    comments: str = "",
) -> ReportReviewed:
    return ReportReviewed(
        application_id=request.application_id,
        report_id=request.report_id,
        reviewer_id="reviewer-report",
        outcome=outcome,
        comments=comments,
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
        await publish(self.broker, self.settings.topic_prefix, topic, envelope)

    async def _on_partner(self, command: Envelope[RequestPartnerConfirmation]) -> None:
        if command.application_id in self.silent_partners:
            return
        await self._publish(
            topics.PARTNER_CONFIRMED, command, partner_confirmed(command.payload, confirmed=True)
        )

    async def _on_reviews(self, command: Envelope[RequestReviews]) -> None:
        for index in range(1, command.payload.reviews_needed + 1):
            await self._publish(
                topics.REVIEW_COMPLETED,
                command,
                review(command.application_id, command.payload.round, index, 4),
            )

    async def _on_reserve(self, command: Envelope[ReserveFunds]) -> None:
        await self._publish(topics.FUNDS_RESERVED, command, funds_reserved(command.payload))

    async def _on_pay(self, command: Envelope[PayTranche]) -> None:
        await self._publish(topics.DISBURSEMENT_SETTLED, command, tranche_settled(command.payload))

    async def _on_release(self, command: Envelope[ReleaseFunds]) -> None:
        release = command.payload
        released = funds_released(release, release.amount or Money.zero("USD"))
        await self._publish(topics.FUNDS_RELEASED, command, released)

    async def _on_refund(self, command: Envelope[RequestRefund]) -> None:
        await self._publish(topics.REFUND_REQUESTED, command, refund_requested(command.payload))

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
        await self._publish(topics.REPORT_REVIEWED, command, report_reviewed(command.payload))
