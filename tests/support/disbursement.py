"""Factories and a small harness for the disbursement service's tests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.disbursement.persistence import messaging
from services.disbursement.service import Disbursement
from services.disbursement.settings import DisbursementOptions, DisbursementSettings
from shared.auth import Role, mint_token
from shared.contracts.envelope import Envelope, new_envelope
from shared.contracts.finance import PaymentFailed, PaymentSettled
from shared.contracts.money import Money
from shared.contracts.topics import TOPICS_BY_NAME, Topic
from shared.contracts.workflows import (
    AdjustAward,
    PayTranche,
    ReleaseFunds,
    RequestRefund,
    ReserveFunds,
)
from shared.db import create_engine, create_session_factory, unit_of_work
from shared.messaging.outbox import Outbox
from shared.migrations import upgrade

WEBHOOK_SECRET = "test-webhook-secret"


def usd(amount_minor: int) -> Money:
    return Money(amount_minor=amount_minor, currency="USD")


def _command(payload: BaseModel, application_id: str) -> Envelope[Any]:
    return new_envelope(payload, producer="workflows", application_id=application_id)


def reserve(
    application_id: str,
    amount: Money,
    *,
    program: str,
    cycle: str = "2027",
    command_id: str | None = None,
    key: str | None = None,
) -> Envelope[ReserveFunds]:
    command_id = command_id or f"{application_id}:reserve:{uuid.uuid4().hex[:6]}"
    return _command(
        ReserveFunds(
            command_id=command_id,
            idempotency_key=key or command_id,
            application_id=application_id,
            program_code=program,
            cycle=cycle,
            amount=amount,
        ),
        application_id,
    )


def release(
    application_id: str,
    amount: Money | None = None,
    *,
    program: str,
    cycle: str = "2027",
    command_id: str | None = None,
) -> Envelope[ReleaseFunds]:
    command_id = command_id or f"{application_id}:release:{uuid.uuid4().hex[:6]}"
    return _command(
        ReleaseFunds(
            command_id=command_id,
            idempotency_key=command_id,
            application_id=application_id,
            program_code=program,
            cycle=cycle,
            reason="withdrawn",
            amount=amount,
        ),
        application_id,
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
    return _command(
        PayTranche(
            command_id=command_id or f"{application_id}:pay:{tranche}",
            idempotency_key=f"{application_id}:{tranche}",
            application_id=application_id,
            program_code=program,
            cycle=cycle,
            tranche=tranche,
            amount=amount,
            payee_reference=payee,
            memo=f"tranche {tranche} of {application_id}",
        ),
        application_id,
    )


def refund(
    application_id: str,
    amount: Money,
    *,
    program: str,
    cycle: str = "2027",
    command_id: str | None = None,
) -> Envelope[RequestRefund]:
    command_id = command_id or f"{application_id}:refund:{uuid.uuid4().hex[:6]}"
    return _command(
        RequestRefund(
            command_id=command_id,
            idempotency_key=command_id,
            application_id=application_id,
            program_code=program,
            cycle=cycle,
            amount=amount,
            reason="exchange cancelled",
        ),
        application_id,
    )


def adjust(
    application_id: str,
    new_award: Money,
    *,
    program: str,
    cycle: str = "2027",
    command_id: str | None = None,
) -> Envelope[AdjustAward]:
    command_id = command_id or f"{application_id}:adjust:{uuid.uuid4().hex[:6]}"
    return _command(
        AdjustAward(
            command_id=command_id,
            idempotency_key=command_id,
            application_id=application_id,
            program_code=program,
            cycle=cycle,
            new_award=new_award,
            reason="amendment approved",
        ),
        application_id,
    )


def settled(instruction_id: str, amount: Money, reference: str = "FIN-1") -> PaymentSettled:
    return PaymentSettled(instruction_id=instruction_id, finance_reference=reference, amount=amount)


def failed(instruction_id: str, reason: str = "account closed") -> PaymentFailed:
    return PaymentFailed(instruction_id=instruction_id, reason=reason)


def finance_event(notice: PaymentSettled | PaymentFailed, application_id: str) -> Envelope[Any]:
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

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.envelope["payload"]
        return payload


@dataclass
class Ledger:
    """The service's use cases over a real database, without a broker."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    disbursement: Disbursement
    clock: FakeClock
    prefix: str

    @classmethod
    async def create(
        cls, database_url: str, *, prefix: str = "", migrate: bool = True, **options: Any
    ) -> Ledger:
        if migrate:
            await asyncio.to_thread(upgrade, "disbursement", database_url)
        engine = create_engine(database_url)
        clock = FakeClock()
        disbursement = Disbursement(
            Outbox(messaging, prefix),
            DisbursementOptions(seed_demo_budgets=False, **options),
            clock=clock,
        )
        return cls(engine, create_session_factory(engine), disbursement, clock, prefix)

    async def budget(self, program: str, amount: Money, cycle: str = "2027") -> None:
        async with unit_of_work(self.sessions) as session:
            await self.disbursement.set_budget(session, program, cycle, amount)

    async def run(self, envelope: Envelope[Any]) -> None:
        use_cases: dict[type[BaseModel], Callable[[AsyncSession, Envelope[Any]], Awaitable[None]]]
        use_cases = {
            ReserveFunds: self.disbursement.reserve,
            ReleaseFunds: self.disbursement.release,
            PayTranche: self.disbursement.pay,
            RequestRefund: self.disbursement.refund,
            AdjustAward: self.disbursement.adjust,
        }
        use_case = use_cases[type(envelope.payload)]
        async with unit_of_work(self.sessions) as session:
            await use_case(session, envelope)

    async def finance(self, notice: PaymentSettled | PaymentFailed, channel: str = "kafka") -> str:
        async with unit_of_work(self.sessions) as session:
            disposition = await self.disbursement.record_settlement(
                session, notice, channel=channel
            )
        return disposition.value

    async def tick(self) -> int:
        async with unit_of_work(self.sessions) as session:
            return await self.disbursement.resend_overdue(session)

    async def published(self, application_id: str, topic: Topic | None = None) -> list[Published]:
        table = messaging.outbox
        query = select(table.c.topic, table.c.event_id, table.c.body, table.c.sent_at).where(
            table.c.message_key == application_id
        )
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
            )
            for row in rows
        ]

    async def relay(self) -> None:
        """Mark every event as published, as the outbox relay would."""
        async with unit_of_work(self.sessions) as session:
            await session.execute(update(messaging.outbox).values(sent_at=datetime.now(UTC)))

    async def report(self, program: str, cycle: str = "2027") -> Any:
        async with self.sessions() as session:
            return await self.disbursement.budget_report(session, program, cycle)

    async def history(self, application_id: str) -> Any:
        async with self.sessions() as session:
            return await self.disbursement.payment_history(session, application_id)

    async def close(self) -> None:
        await self.engine.dispose()


def topic_of(published: Published) -> Topic:
    return TOPICS_BY_NAME[published.topic]


def sign(
    body: bytes, *, secret: str = WEBHOOK_SECRET, at: datetime | None = None
) -> dict[str, str]:
    timestamp = str(int((at or datetime.now(UTC)).timestamp()))
    signature = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return {
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


def service_settings(bootstrap: str, database_url: str, prefix: str) -> DisbursementSettings:
    return DisbursementSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        database_url=database_url,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=300,
        outbox_poll_interval_ms=50,
        finance_webhook_secret=WEBHOOK_SECRET,
    )


@asynccontextmanager
async def running_service(
    bootstrap: str, database_url: str, prefix: str, **options: Any
) -> AsyncIterator[RunningService]:
    """The disbursement service in-process: migrated, topics created, consumers joined."""
    from services.disbursement.app import create_app
    from shared.contracts.topics import broker_topic_names
    from shared.messaging.topics_admin import ensure_topics

    await ensure_topics(bootstrap, broker_topic_names(prefix))
    await asyncio.to_thread(upgrade, "disbursement", database_url)
    settings = service_settings(bootstrap, database_url, prefix)
    app = create_app(settings, options=DisbursementOptions(**options))
    async with app.router.lifespan_context(app), http_client(app) as client:
        yield RunningService(settings, app, client)
