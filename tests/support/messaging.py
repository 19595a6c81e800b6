"""A tiny service made of the shared plumbing, to test it against real infrastructure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faststream.kafka import KafkaBroker
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.contracts.envelope import Envelope, new_envelope
from shared.contracts.intake import ApplicationWithdrawn
from shared.contracts.topics import APPLICATION_WITHDRAWN
from shared.db import create_engine, create_session_factory
from shared.messaging.broker import create_broker, subscriber
from shared.messaging.deadletter import DeadLetterPolicy
from shared.messaging.inbox import Inbox
from shared.messaging.outbox import Outbox, OutboxRelay
from shared.messaging.tables import MessagingTables, define_messaging_tables
from shared.messaging.topics_admin import ensure_topics
from shared.settings import CommonSettings

TOPIC = APPLICATION_WITHDRAWN


def on_test_broker(bootstrap: str, prefix: str, **more: Any) -> dict[str, Any]:
    """Settings for a process on a test's broker, under topics of its own: consumers join
    and the outbox relays in a fraction of the production seconds; ``more`` wins."""
    quick = {
        "kafka_bootstrap_servers": bootstrap,
        "topic_prefix": prefix,
        "kafka_session_timeout_ms": 2000,
        "kafka_heartbeat_interval_ms": 300,
        "outbox_poll_interval_ms": 50,
    }
    return quick | more


def withdrawn(application_id: str, reason: str) -> Envelope[ApplicationWithdrawn]:
    return new_envelope(
        ApplicationWithdrawn(application_id=application_id, member_id="m-1", reason=reason),
        producer="intake",
        application_id=application_id,
    )


def received_table(metadata: MetaData, name: str) -> Table:
    # No unique constraint on event_id on purpose: a duplicate must be visible as a row.
    return Table(
        f"{name}_received",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False),
        Column("application_id", String(64), nullable=False),
        Column("reason", String(255), nullable=False),
    )


@dataclass
class Harness:
    name: str
    settings: CommonSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    tables: MessagingTables
    received: Table
    outbox: Outbox
    brokers: list[KafkaBroker] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @classmethod
    async def create(cls, database_url: str, bootstrap: str, name: str, **settings: Any) -> Harness:
        metadata = MetaData()
        tables = define_messaging_tables(metadata, name)
        received = received_table(metadata, name)
        engine = create_engine(database_url)
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        config = CommonSettings(**on_test_broker(bootstrap, f"{name}.", **settings))
        await ensure_topics(
            bootstrap,
            [TOPIC.qualified(config.topic_prefix), TOPIC.qualified(config.topic_prefix) + ".dlq"],
        )
        return cls(
            name,
            config,
            engine,
            create_session_factory(engine),
            tables,
            received,
            Outbox(tables, config.topic_prefix),
        )

    @property
    def topic(self) -> str:
        return TOPIC.qualified(self.settings.topic_prefix)

    async def broker(self) -> tuple[KafkaBroker, DeadLetterPolicy]:
        broker, policy = create_broker(self.settings, client_id=self.name)
        self.brokers.append(broker)
        return broker, policy

    async def start_relay(self, **options: Any) -> OutboxRelay:
        broker, policy = await self.broker()
        await broker.start()
        assert policy.publish is not None
        relay = OutboxRelay(
            self.tables,
            self.sessions,
            policy.publish,
            wake=self.outbox.committed,
            poll_interval=0.05,
            **options,
        )
        self.tasks.append(asyncio.create_task(relay.run()))
        return relay

    async def start_consumer(
        self,
        before: Callable[[Envelope[ApplicationWithdrawn]], Awaitable[None]] | None = None,
        **policy_options: Any,
    ) -> DeadLetterPolicy:
        """Consume the topic into the received table through the inbox."""
        broker, policy = await self.broker()
        for option, value in policy_options.items():
            setattr(policy, option, value)
        inbox = Inbox(self.tables, self.sessions, f"{self.name}.consumer")

        @subscriber(broker, self.settings, TOPIC, group_id=f"{self.name}-group")
        async def on_withdrawn(event: Envelope[ApplicationWithdrawn]) -> None:
            if before is not None:
                await before(event)

            async def record(session: AsyncSession) -> None:
                await session.execute(
                    self.received.insert().values(
                        event_id=str(event.event_id),
                        application_id=event.application_id,
                        reason=event.payload.reason,
                    )
                )

            await inbox.process(event, self.topic, record)

        await broker.start()
        return policy

    async def received_rows(self) -> list[Any]:
        async with self.sessions() as session:
            return list(
                (await session.execute(select(self.received).order_by(self.received.c.id))).all()
            )

    async def received_count(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(self.received)) or 0)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for broker in self.brokers:
            await broker.stop()
        await self.engine.dispose()


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 30.0, interval: float = 0.05
) -> None:
    """Wait until ``check`` holds; fail with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {check.__name__}")


async def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
    """Read ``count`` records from the start of a topic with a raw aiokafka consumer."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def publish_envelopes(bootstrap: str, topic: str, *envelopes: Envelope[Any]) -> None:
    """Send as a service does: each envelope one message keyed by its application."""
    from aiokafka import AIOKafkaProducer

    from shared.messaging.outbox import message_headers

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(
                topic,
                envelope.model_dump_json().encode(),
                key=envelope.application_id.encode(),
                headers=[(key, value.encode()) for key, value in message_headers(envelope).items()],
            )
    finally:
        await producer.stop()
