"""Factories and a small harness for the disbursement service's tests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from faststream.kafka import TestKafkaBroker
from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.disbursement.consumers import consumers
from services.disbursement.persistence import messaging, metadata
from services.disbursement.schemas import BudgetReport, PaymentHistory, Reconciliation
from services.disbursement.service import DisbursementService
from services.disbursement.settings import DisbursementSettings
from shared.auth import Role, mint_token
from shared.contracts.envelope import Envelope, new_envelope
from shared.contracts.finance import (
    PaymentFailed,
    PaymentSettled,
    RefundCollected,
    RefundCollectionFailed,
)
from shared.contracts.money import Money
from shared.contracts.topics import Topic
from shared.contracts.workflows import (
    AdjustAward,
    PayTranche,
    ReleaseFunds,
    RequestRefund,
    ReserveFunds,
)
from shared.messaging.consumers import register_consumers
from shared.messaging.deadletter import PoisonMessage
from shared.messaging.outbox import message_headers
from shared.migrations import upgrade
from shared.service import build_runtime
from tests.support.messaging import on_test_broker

WEBHOOK_SECRET = "test-webhook-secret"


def usd(amount_minor: int) -> Money:
    return Money(amount_minor=amount_minor, currency="USD")


def _command(payload: BaseModel, application_id: str) -> Envelope[Any]:
    return new_envelope(payload, producer="workflows", application_id=application_id)


def _budget_command(
    kind: type[BaseModel],
    verb: str,
    application_id: str,
    *,
    program: str,
    cycle: str,
    command_id: str | None,
    key: str | None = None,
    **fields: Any,
) -> Envelope[Any]:
    """A command on an award's money, under a fresh command id unless one is given."""
    command_id = command_id or f"{application_id}:{verb}:{uuid.uuid4().hex[:6]}"
    payload = kind(
        command_id=command_id,
        idempotency_key=key or command_id,
        application_id=application_id,
        program_code=program,
        cycle=cycle,
        **fields,
    )
    return _command(payload, application_id)


def reserve(
    application_id: str,
    amount: Money,
    *,
    program: str,
    cycle: str = "2027",
    command_id: str | None = None,
    key: str | None = None,
    submitted_at: datetime | None = None,
) -> Envelope[ReserveFunds]:
    return _budget_command(
        ReserveFunds,
        "reserve",
        application_id,
        program=program,
        cycle=cycle,
        command_id=command_id,
        key=key,
        amount=amount,
        submitted_at=submitted_at,
    )


def release(
    application_id: str,
    amount: Money | None = None,
    *,
    program: str,
    cycle: str = "2027",
    command_id: str | None = None,
) -> Envelope[ReleaseFunds]:
    return _budget_command(
        ReleaseFunds,
        "release",
        application_id,
        program=program,
        cycle=cycle,
        command_id=command_id,
        reason="withdrawn",
        amount=amount,
    )


def pay(
    application_id: str,
    tranche: int,
    amount: Money,
    *,
    program: str,
    cycle: str = "2027",
    command_id: str | None = None,
    payee: str = "payee-1",
) -> Envelope[PayTranche]:
    return _budget_command(
        PayTranche,
        "pay",
        application_id,
        program=program,
        cycle=cycle,
        command_id=command_id or f"{application_id}:pay:{tranche}",
        key=f"{application_id}:{tranche}",
        tranche=tranche,
        amount=amount,
        payee_reference=payee,
        memo=f"tranche {tranche} of {application_id}",
    )


def refund(
    application_id: str,
    amount: Money,
    *,
    program: str,
    cycle: str = "2027",
    command_id: str | None = None,
) -> Envelope[RequestRefund]:
    return _budget_command(
        RequestRefund,
        "refund",
        application_id,
        program=program,
        cycle=cycle,
        command_id=command_id,
        amount=amount,
        reason="exchange cancelled",
    )


def adjust(
    application_id: str,
    new_award: Money,
    *,
    program: str,
    cycle: str = "2027",
    command_id: str | None = None,
) -> Envelope[AdjustAward]:
    return _budget_command(
        AdjustAward,
        "adjust",
        application_id,
        program=program,
        cycle=cycle,
        command_id=command_id,
        new_award=new_award,
        reason="amendment approved",
    )


def settled(instruction_id: str, amount: Money, reference: str = "FIN-1") -> PaymentSettled:
    return PaymentSettled(instruction_id=instruction_id, finance_reference=reference, amount=amount)


def failed(instruction_id: str, reason: str = "account closed") -> PaymentFailed:
    return PaymentFailed(instruction_id=instruction_id, reason=reason)


def received(refund_id: str, amount: Money, reference: str = "FIN-R1") -> RefundCollected:
    return RefundCollected(refund_id=refund_id, finance_reference=reference, amount=amount)


def not_collected(refund_id: str, reason: str = "direct debit refused") -> RefundCollectionFailed:
    return RefundCollectionFailed(refund_id=refund_id, reason=reason)


RefundNotice = RefundCollected | RefundCollectionFailed


def finance_event(
    notice: PaymentSettled | PaymentFailed | RefundNotice, application_id: str
) -> Envelope[Any]:
    return new_envelope(notice, producer="finance", application_id=application_id)


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime(2027, 3, 1, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass(frozen=True)
class Published:
    topic: str
    event_id: str
    envelope: dict[str, Any]
    sent: bool
    subject: str | None

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.envelope["payload"]
        return payload


@dataclass
class Ledger:
    """The service over a real database, its messages delivered through its real consumer
    (inbox, command receipts, use case) by FastStream's in-memory broker: no Kafka."""

    service: DisbursementService
    clock: FakeClock
    prefix: str
    _broker: AsyncExitStack

    @classmethod
    async def create(
        cls, database_url: str, *, prefix: str = "", migrate: bool = True, **settings: Any
    ) -> Ledger:
        if migrate:
            await asyncio.to_thread(upgrade, "disbursement", database_url)
        clock = FakeClock()
        config = DisbursementSettings(
            database_url=database_url,
            topic_prefix=prefix,
            kafka_bootstrap_servers="127.0.0.1:9",  # never reached: the broker is in memory
            **settings,
        )
        runtime = build_runtime(config, metadata, messaging)
        service = DisbursementService(runtime, config, clock=clock)
        register_consumers(service, consumers(service))
        stack = AsyncExitStack()
        await stack.enter_async_context(TestKafkaBroker(runtime.broker))
        return cls(service, clock, prefix, stack)

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.service.runtime.sessions

    async def budget(self, program: str, amount: Money, cycle: str = "2027") -> None:
        async with self.service.work() as work:
            await self.service.set_budget(work, program, cycle, amount, "test budget")

    async def run(self, envelope: Envelope[Any]) -> None:
        """Deliver a command or finance's answer as Kafka would (``PoisonMessage``: refused)."""
        topic = next(
            topic
            for topic in consumers(self.service)
            if isinstance(envelope.payload, topic.payload)
        )
        await self.service.runtime.broker.publish(
            envelope.model_dump_json().encode(),
            topic=topic.qualified(self.prefix),
            key=envelope.application_id.encode(),
            headers=message_headers(envelope),
        )

    async def resend(self, envelope: Envelope[Any]) -> Envelope[Any]:
        """Send a command again as the workflow does: the same command, a new event id."""
        again = new_envelope(
            envelope.payload, producer="workflows", application_id=envelope.application_id
        )
        await self.run(again)
        return again

    async def finance(self, notice: PaymentSettled | PaymentFailed, channel: str = "kafka") -> str:
        """Finance answers; what it did to the payment (its receipt's disposition)."""
        if channel == "webhook":
            async with self.service.work() as work:
                disposition = await self.service.record_answer(
                    work, self.service.payment_answers, notice, channel=channel
                )
            return disposition.value
        application_id = notice.instruction_id.rsplit(":", 1)[0]
        try:
            await self.run(finance_event(notice, application_id))
        except PoisonMessage:
            return "dead-lettered"
        [payment] = [
            payment
            for payment in (await self.history(application_id)).payments
            if payment.instruction_id == notice.instruction_id
        ]
        return payment.receipts[-1].disposition

    async def refund_answer(self, notice: RefundNotice, channel: str = "kafka") -> str:
        """Finance answers about a refund; what it did (its receipt's disposition)."""
        if channel == "webhook":
            async with self.service.work() as work:
                disposition = await self.service.record_answer(
                    work, self.service.refund_answers, notice, channel=channel
                )
            return disposition.value
        application_id = notice.refund_id.split(":refund", 1)[0]
        try:
            await self.run(finance_event(notice, application_id))
        except PoisonMessage:
            return "dead-lettered"
        [refund] = [
            refund
            for refund in (await self.history(application_id)).refunds
            if refund.refund_id == notice.refund_id
        ]
        return refund.receipts[-1].disposition

    async def remind(self) -> int:
        """The refund reminder clock, once."""
        async with self.service.work() as work:
            return await self.service.remind_overdue_refunds(work)

    async def tick(self) -> int:
        async with self.service.work() as work:
            return await self.service.resend_overdue(work)

    async def published(self, application_id: str, topic: Topic | None = None) -> list[Published]:
        table = messaging.outbox
        query = select(
            table.c.topic, table.c.event_id, table.c.body, table.c.sent_at, table.c.subject
        ).where(table.c.message_key == application_id)
        if topic is not None:
            query = query.where(table.c.topic == topic.qualified(self.prefix))
        async with self.sessions() as session:
            rows = (await session.execute(query.order_by(table.c.id))).all()
        return [
            Published(
                row.topic.removeprefix(self.prefix),
                row.event_id,
                json.loads(row.body),
                row.sent_at is not None,
                row.subject,
            )
            for row in rows
        ]

    async def relay(self) -> None:
        """Mark every event as published, as the outbox relay would."""
        async with self.sessions() as session, session.begin():
            await session.execute(update(messaging.outbox).values(sent_at=datetime.now(UTC)))

    async def report(self, program: str, cycle: str = "2027") -> BudgetReport:
        async with self.service.reading() as work:
            return await self.service.budget_report(work, program, cycle)

    async def history(self, application_id: str) -> PaymentHistory:
        async with self.service.reading() as work:
            return await self.service.payment_history(work, application_id)

    async def reconciliation(self) -> Reconciliation:
        async with self.service.reading() as work:
            return await self.service.reconciliation(work)

    async def close(self) -> None:
        await self._broker.aclose()
        await self.service.runtime.engine.dispose()


def sign(
    body: bytes,
    *,
    secret: str = WEBHOOK_SECRET,
    at: datetime | None = None,
    delivery: str | None = None,
) -> dict[str, str]:
    """Headers of a finance system's delivery of ``body``: a new delivery id unless given."""
    timestamp = str(int((at or datetime.now(UTC)).timestamp()))
    signature = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return {
        "X-Grantflow-Delivery": delivery or uuid.uuid4().hex,
        "X-Grantflow-Timestamp": timestamp,
        "X-Grantflow-Signature": signature,
        "Content-Type": "application/json",
    }


def officer_headers(settings: DisbursementSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, role=Role.PROGRAM_OFFICER)}"}


@asynccontextmanager
async def http_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://disbursement") as client:
        yield client


class TopicWatcher:
    """Reads topics from their start in the background; tests wait for what they expect."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        from aiokafka import AIOKafkaConsumer

        self.consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
        )
        self.records: list[tuple[str, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TopicWatcher:
        await self.consumer.start()
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()

    async def _read(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    self.records.append((record.topic, json.loads(record.value)))

    def seen(self, topic: str, **payload: Any) -> list[dict[str, Any]]:
        """Messages on ``topic`` whose payload has the given fields (the whole body if none)."""
        found = []
        for name, body in self.records:
            if name != topic:
                continue
            fields = body.get("payload", body)
            if all(fields.get(key) == value for key, value in payload.items()):
                found.append(body)
        return found

    def distinct(self, topic: str, **payload: Any) -> list[dict[str, Any]]:
        """Like ``seen``, each event once (a relay may publish one again, same event id)."""
        found: dict[str, dict[str, Any]] = {}
        for body in self.seen(topic, **payload):
            found.setdefault(body["event_id"], body)
        return list(found.values())

    async def wait_for(
        self, topic: str, count: int = 1, timeout: float = 15.0, **payload: Any
    ) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            found = self.seen(topic, **payload)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"{count} message(s) on {topic} with {payload} not seen in {timeout}s; "
            f"saw {[(name, body.get('payload', body)) for name, body in self.records]}"
        )


class Publisher:
    """Publishes envelopes as the workflow or a finance system would."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        from aiokafka import AIOKafkaProducer

        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
        self.prefix = prefix

    async def __aenter__(self) -> Publisher:
        await self.producer.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.producer.stop()

    async def send(self, topic: Topic, envelope: Envelope[Any]) -> None:
        await self.producer.send_and_wait(
            topic.qualified(self.prefix),
            value=envelope.model_dump_json().encode(),
            key=envelope.application_id.encode(),
            headers=[("content-type", b"application/json")],
        )


@dataclass
class RunningService:
    settings: DisbursementSettings
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def officer(self) -> dict[str, str]:
        return officer_headers(self.settings)


def service_settings(
    bootstrap: str, database_url: str, prefix: str, **settings: Any
) -> DisbursementSettings:
    return DisbursementSettings(
        database_url=database_url,
        finance_webhook_secret=WEBHOOK_SECRET,
        **on_test_broker(bootstrap, prefix, **settings),
    )


@asynccontextmanager
async def running_service(
    bootstrap: str, database_url: str, prefix: str, **settings: Any
) -> AsyncIterator[RunningService]:
    """The disbursement service in-process: migrated, topics created, consumers joined."""
    from services.disbursement.app import create_app
    from shared.contracts.topics import broker_topic_names
    from shared.messaging.topics_admin import ensure_topics

    await ensure_topics(bootstrap, broker_topic_names(prefix))
    await asyncio.to_thread(upgrade, "disbursement", database_url)
    app = create_app(service_settings(bootstrap, database_url, prefix, **settings))
    settings = app.state.service.settings
    async with app.router.lifespan_context(app), http_client(app) as client:
        yield RunningService(settings, app, client)
