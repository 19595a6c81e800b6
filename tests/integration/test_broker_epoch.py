"""A broker restarted empty: every committed event reaches its consumers, none is skipped.

The embedded broker keeps its data in memory. These tests restart it under a service made
of the shared plumbing (outbox, relay, inbox, and the broker-epoch watch) and check what
the issue that asked for it saw go wrong: events the relay had marked sent were gone, and
consumers went on from positions of the old life.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.db import unit_of_work
from shared.messaging.epoch import EpochRecord, EpochWatch, faststream_consumers
from shared.messaging.topics_admin import TopicLayout, ensure_topics
from tests.support.messaging import TOPIC, Harness, eventually, read_topic, withdrawn
from tests.support.processes import Tansu


class Healing:
    """A service process made of the shared plumbing: relay, consumer and the epoch watch."""

    def __init__(self, harness: Harness, tansu: Tansu) -> None:
        self.harness = harness
        self.tansu = tansu
        self.watch: EpochWatch | None = None

    async def start(self, *, relay: bool = True) -> None:
        harness = self.harness
        await harness.start_consumer()
        consumer_broker = harness.brokers[-1]
        watch = EpochWatch(
            bootstrap_servers=self.tansu.bootstrap,
            layout=TopicLayout(partitions=3),
            prefix=harness.settings.topic_prefix,
            record=EpochRecord(
                harness.tables, harness.sessions, timedelta(hours=1), harness.settings.topic_prefix
            ),
            consumers=lambda: faststream_consumers(consumer_broker),
            interval=0.2,
        )
        if relay:
            started = await harness.start_relay(before_pass=watch.ready, min_backoff=0.05)
            watch._on_republish = started.wake
        harness.tasks.append(asyncio.create_task(watch.run()))
        self.watch = watch

    async def stop_consuming(self) -> None:
        for task in self.harness.tasks:
            task.cancel()
        await asyncio.gather(*self.harness.tasks, return_exceptions=True)
        self.harness.tasks.clear()
        for broker in self.harness.brokers:
            await broker.stop()
        self.harness.brokers.clear()

    async def write(self, *reasons: str) -> None:
        for reason in reasons:
            async with unit_of_work(self.harness.sessions) as session:
                await self.harness.outbox.add(session, TOPIC, withdrawn("app-1", reason))

    async def reasons_received(self) -> list[str]:
        return [row.reason for row in await self.harness.received_rows()]


@pytest.fixture
async def healing(database_url: str, own_tansu: Tansu, unique: str) -> AsyncIterator[Healing]:
    harness = await Harness.create(database_url, own_tansu.bootstrap, unique)
    yield Healing(harness, own_tansu)
    await harness.close()


async def test_events_the_broker_forgot_are_published_again_and_processed_once(
    healing: Healing, own_tansu: Tansu
) -> None:
    await healing.start()
    await healing.write("one", "two", "three")

    async def three_received() -> bool:
        return len(await healing.reasons_received()) == 3

    await eventually(three_received)

    own_tansu.stop()
    own_tansu.start()  # empty: the three events are gone from the broker

    async def topic_holds_them_again() -> bool:
        records = await read_topic(own_tansu.bootstrap, healing.harness.topic, 3, timeout=2)
        return len(records) >= 3

    await eventually(topic_holds_them_again, timeout=60)
    await healing.write("four")

    async def four_received() -> bool:
        return sorted(await healing.reasons_received()) == ["four", "one", "three", "two"]

    await eventually(four_received, timeout=60)
    # The copies published again reached the consumer, whose inbox dropped them.
    assert sorted(await healing.reasons_received()) == ["four", "one", "three", "two"]
    assert healing.watch is not None and healing.watch.republished_total >= 3


async def test_a_consumer_started_after_the_broker_forgot_does_not_skip_events(
    healing: Healing, own_tansu: Tansu
) -> None:
    """Positions of the old life committed into the new broker (offset 12 on a partition
    whose new log holds 20) must not make the service skip the first 12 new events."""
    await healing.start(relay=False)
    producer = AIOKafkaProducer(bootstrap_servers=own_tansu.bootstrap, enable_idempotence=False)

    async def publish(*reasons: str) -> None:
        await producer.start()
        try:
            for reason in reasons:
                event = withdrawn("app-1", reason)
                await producer.send_and_wait(
                    healing.harness.topic, event.model_dump_json().encode(), key=b"app-1"
                )
        finally:
            await producer.stop()

    await publish(*(f"old {index}" for index in range(12)))

    async def twelve_received() -> bool:
        return len(await healing.reasons_received()) == 12

    await eventually(twelve_received)
    await healing.stop_consuming()
    own_tansu.stop()
    own_tansu.start()
    await ensure_topics(own_tansu.bootstrap, [healing.harness.topic])
    stale = AIOKafkaConsumer(
        bootstrap_servers=own_tansu.bootstrap,
        group_id=f"{healing.harness.name}-group",
        enable_auto_commit=False,
    )
    await stale.start()
    try:
        partitions = [TopicPartition(healing.harness.topic, p) for p in range(3)]
        stale.assign(partitions)
        await stale.commit(dict.fromkeys(partitions, 12))
    finally:
        await stale.stop()
    producer = AIOKafkaProducer(bootstrap_servers=own_tansu.bootstrap, enable_idempotence=False)
    await publish(*(f"new {index}" for index in range(20)))

    await healing.start(relay=False)

    async def twenty_new_received() -> bool:
        reasons = await healing.reasons_received()
        return len([reason for reason in reasons if reason.startswith("new")]) == 20

    await eventually(twenty_new_received, timeout=60)
