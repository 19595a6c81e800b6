"""The broker's epoch: noticing that the broker has forgotten, and making up for it.

The embedded broker (Tansu) keeps its data in memory. Restarted, it comes back empty:
the events it had acknowledged are gone, committed consumer offsets are gone, and for a
moment it acknowledges writes to topics it has not created yet and then never serves
them. A broker of any kind may also be replaced by an operator. Nothing in the Kafka
protocol says "I am not the broker you wrote to"; this module makes that visible.

An *epoch* is one life of the broker's data. It is named by the first record of the
``grantflow.broker-epoch`` topic, a random id written once when the topics are created
(``prepare_broker``). Every process checks it every ``GRANTFLOW_BROKER_EPOCH_CHECK_MS``:

- no marker: the broker is new. The checker creates every topic and writes a marker;
  the first marker written is the epoch, whoever wrote it.
- another marker than this process saw before: its long-lived consumers hold positions
  from the old life. They are moved to the start of every partition they read and that
  position is committed, so no consumer skips an event of the new life (inboxes drop
  what was processed before).
- another marker than the service recorded in its database: every outbox row sent
  within the retention period (and every answer to a command) is published again, in
  order, once the topics exist. Until that is done, the relay holds back.

So every event that a service committed reaches its consumers, also across a restart of
the whole stack on an in-memory broker. With a durable broker the epoch never changes
and all this costs one small fetch per check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import utc_now
from shared.messaging.outbox import republish_retained
from shared.messaging.tables import MessagingTables
from shared.messaging.topics_admin import (
    EPOCH_TOPIC_NAME,
    NO_OPTIONS,
    TopicLayout,
    ensure_all_topics,
)

logger = logging.getLogger(__name__)


def epoch_topic(prefix: str = "") -> str:
    return f"{prefix}{EPOCH_TOPIC_NAME}"


async def read_epoch(consumer: AIOKafkaConsumer, topic: str, wait: float = 1.0) -> str | None:
    """The epoch the broker holds now, or None when it holds no marker."""
    partition = TopicPartition(topic, 0)
    if consumer.assignment() != {partition}:
        consumer.assign([partition])
    await consumer.seek_to_beginning(partition)
    batches = await consumer.getmany(partition, timeout_ms=int(wait * 1000), max_records=1)
    for record in batches.get(partition, []):
        with contextlib.suppress(ValueError, TypeError, KeyError):
            return str(json.loads(record.value or b"")["epoch"])
    return None


async def write_epoch(
    bootstrap_servers: str, topic: str, connection: Mapping[str, Any] = NO_OPTIONS
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        **connection,
        enable_idempotence=False,
        acks="all",
        request_timeout_ms=10_000,
    )
    await producer.start()
    try:
        marker = {"epoch": str(uuid.uuid4()), "established_at": utc_now().isoformat()}
        await producer.send_and_wait(topic, json.dumps(marker).encode(), key=b"epoch", partition=0)
    finally:
        await producer.stop()


async def prepare_broker(
    bootstrap_servers: str,
    layout: TopicLayout,
    prefix: str = "",
    connection: Mapping[str, Any] = NO_OPTIONS,
) -> str:
    """Create every topic, then the epoch marker if there is none; return the epoch."""
    await ensure_all_topics(bootstrap_servers, layout, prefix, connection)
    consumer = _marker_reader(bootstrap_servers, connection)
    await consumer.start()
    try:
        topic = epoch_topic(prefix)
        epoch = await read_epoch(consumer, topic)
        if epoch is None:
            await write_epoch(bootstrap_servers, topic, connection)
            epoch = await read_epoch(consumer, topic, wait=5.0)
        if epoch is None:
            raise ConnectionError("the broker acknowledged the epoch marker but does not serve it")
        return epoch
    finally:
        await consumer.stop()


def _marker_reader(
    bootstrap_servers: str, connection: Mapping[str, Any] = NO_OPTIONS
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        **connection,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        request_timeout_ms=10_000,
    )


async def rewind_consumers(consumers: Iterable[AIOKafkaConsumer]) -> int:
    """Move each consumer to the start of the partitions it reads, and commit that."""
    moved = 0
    for consumer in consumers:
        assigned = consumer.assignment()
        if not assigned:
            continue
        beginnings = await consumer.beginning_offsets(list(assigned))
        for partition, offset in beginnings.items():
            consumer.seek(partition, offset)
        # Committed too: a consumer of the group that joins later must not start from the
        # positions an old consumer committed into the new broker.
        with contextlib.suppress(Exception):
            await consumer.commit(dict(beginnings))
        moved += len(beginnings)
    return moved


def faststream_consumers(broker: KafkaBroker) -> list[AIOKafkaConsumer]:
    found: list[AIOKafkaConsumer] = []
    for subscriber in broker.subscribers:
        consumer = getattr(subscriber, "consumer", None)
        if isinstance(consumer, AIOKafkaConsumer):
            found.append(consumer)
    return found


class EpochRecord:
    """The epochs a service last published into and consumed from, in its own database.

    Two rows: the outbox's (the retained outbox was republished into that epoch) and the
    consumers' (the service's consumer group was moved to the start of that epoch's log).
    """

    def __init__(
        self,
        tables: MessagingTables,
        sessions: async_sessionmaker[AsyncSession],
        retention: timedelta,
        prefix: str = "",
    ) -> None:
        # Per topic prefix: test runs and environments that share a database each have
        # their own topics, and so their own epoch.
        self._outbox_row = f"outbox:{prefix}"
        self._consumers_row = f"consumers:{prefix}"
        self._table = tables.broker_epoch
        self._tables = tables
        self._sessions = sessions
        self._retention = retention

    async def _known(self, session: AsyncSession, row: str) -> str | None:
        table = self._table
        return await session.scalar(select(table.c.epoch).where(table.c.name == row))

    async def _record(self, session: AsyncSession, row: str, epoch: str, known: str | None) -> bool:
        table = self._table
        values: dict[str, Any] = {"epoch": epoch, "seen_at": utc_now()}
        if known is not None:
            await session.execute(update(table).where(table.c.name == row).values(**values))
            return True
        try:
            async with session.begin_nested():
                await session.execute(insert(table).values(name=row, **values))
        except IntegrityError:  # a replica recorded it meanwhile
            return False
        return True

    async def adopt(self, epoch: str) -> int | None:
        """Record ``epoch``; when it is a new one, republish the retained outbox first.

        Returns the number of rows to publish again, or None when the epoch was known.
        One transaction: replicas that notice the change together republish once.
        """
        async with self._sessions() as session, session.begin():
            known = await self._known(session, self._outbox_row)
            if known == epoch:
                return None
            again = await republish_retained(session, self._tables, self._retention)
            if not await self._record(session, self._outbox_row, epoch, known):
                return None
        return again

    async def consumers_behind(self, epoch: str) -> bool:
        async with self._sessions() as session:
            return await self._known(session, self._consumers_row) != epoch

    async def consumers_caught_up(self, epoch: str) -> None:
        async with self._sessions() as session, session.begin():
            known = await self._known(session, self._consumers_row)
            if known != epoch:
                await self._record(session, self._consumers_row, epoch, known)


class EpochWatch:
    """Checks the broker's epoch and heals a process when the broker has forgotten.

    ``ready()`` is the relay's gate: True once the epoch the service recorded is the one
    the broker holds (so nothing is published into an old life, and nothing forgotten
    stays forgotten).
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        layout: TopicLayout,
        prefix: str = "",
        record: EpochRecord | None = None,
        consumers: Callable[[], Iterable[AIOKafkaConsumer]] = list,
        on_republish: Callable[[], None] = lambda: None,
        interval: float = 1.0,
        connection: Mapping[str, Any] = NO_OPTIONS,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._layout = layout
        self._prefix = prefix
        self._record = record
        self._consumers = consumers
        self._on_republish = on_republish
        self._interval = interval
        self._connection = connection
        self._reader: AIOKafkaConsumer | None = None
        self.seen: str | None = None
        self.adopted: str | None = None
        self.consumed: str | None = None
        self.changes = 0
        self.republished_total = 0
        self._checked = asyncio.Event()

    async def ready(self) -> bool:
        if self._record is None:
            return True
        if self.adopted is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._checked.wait(), self._interval * 5)
        return self.adopted is not None and self.adopted == self.seen

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.check()
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # the broker or the database is away for a moment
                    logger.warning("broker epoch check failed: %r", error)
                    await self._reset_reader()
                self._checked.set()
                await asyncio.sleep(self._interval)
        finally:
            await self._reset_reader()

    async def check(self) -> None:
        if self._reader is None:
            self._reader = _marker_reader(self._bootstrap, self._connection)
            await self._reader.start()
        topic = epoch_topic(self._prefix)
        epoch = await read_epoch(self._reader, topic, wait=min(self._interval, 1.0))
        if epoch is None:
            logger.warning("the broker holds no epoch marker: it is new or was restarted empty")
            epoch = await prepare_broker(
                self._bootstrap, self._layout, self._prefix, self._connection
            )
        if self.seen is not None and epoch != self.seen:
            self.changes += 1
            moved = await rewind_consumers(self._consumers())
            logger.warning(
                "the broker's epoch changed (%s -> %s): %s partitions read again from the start",
                self.seen,
                epoch,
                moved,
            )
            if self._record is not None:
                await self._record.consumers_caught_up(epoch)
            self.consumed = epoch
        elif self._record is not None and self.consumed != epoch:
            await self._catch_up_consumers(epoch)
        self.seen = epoch
        if self._record is not None and self.adopted != epoch:
            again = await self._record.adopt(epoch)
            if again:
                self.republished_total += again
                logger.warning(
                    "broker epoch %s is new to this service: %s outbox rows published again",
                    epoch,
                    again,
                )
            self.adopted = epoch
            self._on_republish()

    async def _catch_up_consumers(self, epoch: str) -> None:
        """A process that starts in a new epoch: its group may hold positions of the old one
        (committed into the new broker before anyone noticed). Move the group's consumers
        to the start once, when they hold partitions, and record that it was done."""
        assert self._record is not None
        if not await self._record.consumers_behind(epoch):
            self.consumed = epoch
            return
        consumers = list(self._consumers())
        moved = await rewind_consumers(consumers)
        if moved or not consumers:
            if moved:
                logger.warning(
                    "this service last consumed from another broker epoch: "
                    "%s partitions read again from the start",
                    moved,
                )
            await self._record.consumers_caught_up(epoch)
            self.consumed = epoch

    async def _reset_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                await reader.stop()
