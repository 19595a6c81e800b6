"""The outbox, the inbox and dead letters against a real broker (Tansu) and real databases."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from shared.contracts.envelope import Envelope
from shared.contracts.intake import ApplicationWithdrawn
from shared.db import unit_of_work
from shared.errors import DependencyUnavailable
from shared.messaging.outbox import message_headers
from tests.support.messaging import Harness, eventually, read_topic, withdrawn
from tests.support.processes import Tansu


@pytest.fixture
async def harness(database_url: str, tansu: Tansu, unique: str) -> AsyncIterator[Harness]:
    harness = await Harness.create(database_url, tansu.bootstrap, unique)
    yield harness
    await harness.close()


async def publish_raw(
    harness: Harness, body: bytes, key: str = "app-1", headers: dict[str, str] | None = None
) -> None:
    broker, _ = await harness.broker()
    await broker.start()
    await broker.publish(
        body,
        topic=harness.topic,
        key=key.encode(),
        headers=headers or {"content-type": "application/json"},
    )


async def test_event_goes_from_outbox_through_broker_to_inbox_handler(harness: Harness) -> None:
    event = withdrawn("app-1", "the exchange was postponed")
    async with unit_of_work(harness.sessions) as session:
        await harness.outbox.add(session, harness_topic(), event)

    relay = await harness.start_relay()
    await harness.start_consumer()

    await eventually(lambda: _count_is(harness, 1))
    [row] = await harness.received_rows()
    assert (row.event_id, row.application_id, row.reason) == (
        str(event.event_id),
        "app-1",
        "the exchange was postponed",
    )
    assert await relay.pending_count() == 0


async def test_the_same_event_delivered_twice_changes_state_once(harness: Harness) -> None:
    deliveries: list[str] = []

    async def count_delivery(event: Envelope[ApplicationWithdrawn]) -> None:
        deliveries.append(event.payload.reason)

    duplicate = withdrawn("app-1", "duplicate")
    follower = withdrawn("app-1", "after the duplicate")
    for event in (duplicate, duplicate, follower):
        await publish_raw(harness, event.model_dump_json().encode(), headers=message_headers(event))
    await harness.start_consumer(before=count_delivery)

    await eventually(lambda: _delivered(deliveries, 3))
    await eventually(lambda: _count_is(harness, 2))
    rows = await harness.received_rows()
    assert [row.reason for row in rows] == ["duplicate", "after the duplicate"]


async def test_poison_message_goes_to_dead_letters_and_the_next_is_processed(
    harness: Harness,
) -> None:
    await publish_raw(harness, b"{not json")
    await publish_raw(harness, json.dumps({"event_id": "nope"}).encode())
    good = withdrawn("app-1", "processed after the poison")
    await publish_raw(harness, good.model_dump_json().encode())
    await harness.start_consumer()

    await eventually(lambda: _count_is(harness, 1))
    dead = await read_topic(harness.settings.kafka_bootstrap_servers, harness.topic + ".dlq", 2)
    letters = [json.loads(record.value) for record in dead]
    assert len(letters) == 2
    assert {letter["attempts"] for letter in letters} == {1}
    assert all(letter["reason"].startswith("invalid message") for letter in letters)
    originals = {__import__("base64").b64decode(letter["original_base64"]) for letter in letters}
    assert originals == {b"{not json", json.dumps({"event_id": "nope"}).encode()}
    assert any("event_type" in letter["reason"] for letter in letters)


async def test_handler_failing_for_good_is_dead_lettered_after_n_attempts_without_hot_loop(
    harness: Harness,
) -> None:
    attempts: list[float] = []

    async def fail_for_one(event: Envelope[ApplicationWithdrawn]) -> None:
        if event.payload.reason == "always fails":
            attempts.append(time.monotonic())
            raise RuntimeError("the ledger is on fire")

    await publish_raw(harness, withdrawn("app-1", "always fails").model_dump_json().encode())
    await publish_raw(harness, withdrawn("app-1", "next one").model_dump_json().encode())
    await harness.start_consumer(before=fail_for_one, max_attempts=4, base_backoff=0.05)

    await eventually(lambda: _count_is(harness, 1))
    assert len(attempts) == 4
    # Backoff between attempts: 50 + 100 + 200 ms at least, not a tight loop.
    assert attempts[-1] - attempts[0] >= 0.3
    [letter] = await read_topic(harness.settings.kafka_bootstrap_servers, harness.topic + ".dlq", 1)
    body = json.loads(letter.value)
    assert body["attempts"] == 4
    assert "the ledger is on fire" in body["reason"]
    assert [row.reason for row in await harness.received_rows()] == ["next one"]


async def test_a_dependency_that_is_down_makes_the_message_wait_not_die(harness: Harness) -> None:
    # Temporal restarting takes seconds; a submission dead-lettered meanwhile is lost for good,
    # so failures of what the handler needs never count towards the dead-letter limit.
    outage: list[float] = []

    async def temporal_restarting(event: Envelope[ApplicationWithdrawn]) -> None:
        if len(outage) < 8:
            outage.append(time.monotonic())
            raise DependencyUnavailable("Temporal is not answering")

    await publish_raw(
        harness, withdrawn("app-1", "waits out the outage").model_dump_json().encode()
    )
    policy = await harness.start_consumer(
        before=temporal_restarting, max_attempts=3, base_backoff=0.02, max_backoff=0.1
    )

    await eventually(lambda: _count_is(harness, 1))
    assert len(outage) == 8
    assert [row.reason for row in await harness.received_rows()] == ["waits out the outage"]
    assert policy.dead_lettered == 0


def harness_topic():  # type: ignore[no-untyped-def]
    from tests.support.messaging import TOPIC

    return TOPIC


async def _count_is(harness: Harness, expected: int) -> bool:
    return await harness.received_count() == expected


async def _delivered(deliveries: list[str], expected: int) -> bool:
    await asyncio.sleep(0)
    return len(deliveries) >= expected
