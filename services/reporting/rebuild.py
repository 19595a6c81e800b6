"""Rebuild the analytics read model from the topics, from their first offset.

``grantflow reporting rebuild`` calls ``rebuild``. It empties the analytics tables of the
target database (migrating it first), notes where every topic ends, reads each partition
from the start up to that point with a plain consumer that belongs to no group (so it
commits nothing and disturbs no running service), and feeds every event through the same
fact extraction and summaries as the live consumer. Events published later are the live
consumer's to apply; applying one twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting.analytics.facts import ANALYTICS_TOPICS, facts_from_event, merge_facts
from services.reporting.persistence import ReportingStore
from shared.clock import utc_now
from shared.contracts.envelope import Envelope
from shared.contracts.topics import Topic
from shared.db import create_engine, create_session_factory, unit_of_work
from shared.migrations import upgrade
from shared.settings import CommonSettings

logger = logging.getLogger(__name__)


class RebuildError(Exception):
    """The topics could not be read to their end."""


@dataclass(frozen=True)
class RebuildResult:
    events_read: int
    events_applied: int
    duplicates: int
    invalid: int
    applications: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"read {self.events_read} events ({self.events_applied} applied, "
            f"{self.duplicates} duplicates, {self.invalid} invalid) into "
            f"{self.applications} applications in {self.seconds:.1f}s"
        )


@dataclass
class _Counts:
    read: int = 0
    applied: int = 0
    duplicates: int = 0
    invalid: int = 0


async def rebuild(
    settings: CommonSettings,
    database_url: str,
    *,
    batch_size: int = 500,
    stall_timeout: float = 30.0,
) -> RebuildResult:
    """Replace the analytics read model in ``database_url`` with one rebuilt from the topics."""
    started = time.monotonic()
    await asyncio.to_thread(upgrade, "reporting", database_url)
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    counts = _Counts()
    try:
        async with unit_of_work(sessions) as session:
            await ReportingStore(session).clear_analytics()
        topics = {topic.qualified(settings.topic_prefix): topic for topic in ANALYTICS_TOPICS}
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="grantflow-reporting-rebuild",
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            await _read_to_end(consumer, topics, sessions, counts, batch_size, stall_timeout)
        finally:
            await consumer.stop()
        async with sessions() as session:
            applications = len(await ReportingStore(session).summaries())
    finally:
        await engine.dispose()
    result = RebuildResult(
        events_read=counts.read,
        events_applied=counts.applied,
        duplicates=counts.duplicates,
        invalid=counts.invalid,
        applications=applications,
        seconds=time.monotonic() - started,
    )
    logger.info("reporting read model rebuilt: %s", result)
    return result


async def _read_to_end(
    consumer: AIOKafkaConsumer,
    topics: dict[str, Topic],
    sessions: async_sessionmaker[AsyncSession],
    counts: _Counts,
    batch_size: int,
    stall_timeout: float,
) -> None:
    await consumer.topics()  # fetches the metadata that partitions_for_topic answers from
    partitions = [
        TopicPartition(name, partition)
        for name in sorted(topics)
        for partition in sorted(consumer.partitions_for_topic(name) or ())
    ]
    missing = [name for name in topics if not consumer.partitions_for_topic(name)]
    if missing:
        logger.warning("rebuild: %s topics do not exist yet: %s", len(missing), missing)
    if not partitions:
        return
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    end = await consumer.end_offsets(partitions)
    # Tansu answers ListOffsets with the base offset of a partition's last batch plus one,
    # which stops short of a batch of several records (Kafka answers the true end). The
    # high watermark of the first fetch response is right on both: take the larger.
    corrected: set[TopicPartition] = set()
    remaining = set(partitions)
    last_progress = time.monotonic()
    while remaining:
        for partition in list(remaining):
            if await consumer.position(partition) >= end[partition]:
                remaining.discard(partition)
        if not remaining:
            break
        batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=batch_size)
        for partition in remaining - corrected:
            highwater = consumer.highwater(partition)
            if highwater is not None:
                end[partition] = max(end[partition], highwater)
                corrected.add(partition)
        records = [
            record
            for partition, fetched in batch.items()
            for record in fetched
            if record.offset < end[partition]
        ]
        if records:
            last_progress = time.monotonic()
            await _apply(records, topics, sessions, counts)
        elif time.monotonic() - last_progress > stall_timeout:
            raise RebuildError(
                f"no progress for {stall_timeout:.0f}s with {len(remaining)} partitions "
                "still to read: is the broker up?"
            )


async def _apply(
    records: list[ConsumerRecord[Any, Any]],
    topics: dict[str, Topic],
    sessions: async_sessionmaker[AsyncSession],
    counts: _Counts,
) -> None:
    parsed: list[tuple[Topic, Envelope[Any]]] = []
    for record in records:
        counts.read += 1
        topic = topics[record.topic]
        envelope_type: type[Envelope[Any]] = Envelope[topic.payload]  # type: ignore[name-defined]
        try:
            parsed.append((topic, envelope_type.model_validate_json(record.value or b"")))
        except ValidationError:
            counts.invalid += 1  # the live consumer dead-lettered it too
    async with unit_of_work(sessions) as session:
        store = ReportingStore(session)
        unseen = await store.unseen_by_rebuild([str(envelope.event_id) for _t, envelope in parsed])
        fresh: list[tuple[str, str]] = []
        new_facts = []
        for topic, envelope in parsed:
            event_id = str(envelope.event_id)
            if event_id not in unseen:
                counts.duplicates += 1
                continue
            unseen.discard(event_id)
            fresh.append((event_id, topic.name))
            new_facts += facts_from_event(envelope)
        counts.applied += len(fresh)
        await store.seen_by_rebuild(fresh, utc_now())
        # One statement may not upsert the same key twice: merge as the table would.
        await store.record(merge_facts(new_facts))
