"""Nothing is lost when the broker goes away or a consumer is killed mid-batch."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.db import unit_of_work
from shared.messaging.topics_admin import ensure_topics
from tests.support.messaging import TOPIC, Harness, eventually, read_topic, withdrawn
from tests.support.processes import Tansu


@pytest.fixture
async def harness_on_own_tansu(
    database_url: str, own_tansu: Tansu, unique: str
) -> AsyncIterator[Harness]:
    harness = await Harness.create(database_url, own_tansu.bootstrap, unique)
    yield harness
    await harness.close()


async def test_events_written_while_the_broker_is_down_are_published_in_order_once_it_is_back(
    harness_on_own_tansu: Harness, own_tansu: Tansu
) -> None:
    harness = harness_on_own_tansu
    relay = await harness.start_relay(min_backoff=0.05, max_backoff=0.5)
    own_tansu.stop()

    written = []
    for index in range(30):
        event = withdrawn(f"app-{index % 3}", f"step {index}")
        written.append(event)
        async with unit_of_work(harness.sessions) as session:
            await harness.outbox.add(session, TOPIC, event)
    await asyncio.sleep(1.0)  # the relay meets the outage and backs off
    assert await relay.pending_count() == 30

    own_tansu.start()  # an empty broker: Tansu keeps nothing across a restart
    await ensure_topics(own_tansu.bootstrap, [harness.topic])
    await eventually(lambda: _nothing_pending(relay), timeout=60)

    records = await read_topic(own_tansu.bootstrap, harness.topic, 30)
    by_key: dict[str, list[str]] = defaultdict(list)
    for record in records:
        by_key[record.key.decode()].append(withdrawn_reason(record.value))
    expected: dict[str, list[str]] = defaultdict(list)
    for event in written:
        expected[event.application_id].append(event.payload.reason)
    assert dict(by_key) == dict(expected)


async def test_consumer_killed_mid_batch_and_restarted_processes_every_event_once(
    harness_on_own_tansu: Harness, database_url: str, tmp_path: Path
) -> None:
    harness = harness_on_own_tansu
    produced = [withdrawn(f"app-{index % 7}", f"event {index}") for index in range(150)]
    broker, _ = await harness.broker()
    await broker.start()
    for event in produced:
        await broker.publish(
            event.model_dump_json().encode(), topic=harness.topic, key=event.application_id.encode()
        )

    consumer = _start_consumer_process(harness, database_url, tmp_path)
    await eventually(lambda: _received_at_least(harness, 20), timeout=60)
    consumer.send_signal(signal.SIGKILL)
    consumer.wait()
    assert await harness.received_count() < len(produced), "killed too late to prove anything"

    restarted = _start_consumer_process(harness, database_url, tmp_path)
    try:
        await eventually(lambda: _received_at_least(harness, len(produced)), timeout=90)
        await asyncio.sleep(0.5)  # a duplicate arriving late would show here
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=10)

    rows = await harness.received_rows()
    assert sorted(row.event_id for row in rows) == sorted(str(e.event_id) for e in produced)


def _start_consumer_process(
    harness: Harness, database_url: str, tmp_path: Path
) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "consumer.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.consumer_process",
            database_url,
            harness.settings.kafka_bootstrap_servers,
            harness.name,
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )


def withdrawn_reason(value: bytes) -> str:
    import json

    return str(json.loads(value)["payload"]["reason"])


async def _nothing_pending(relay: object) -> bool:
    return await relay.pending_count() == 0  # type: ignore[attr-defined, no-any-return]


async def _received_at_least(harness: Harness, count: int) -> bool:
    return await harness.received_count() >= count
