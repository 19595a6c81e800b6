"""The outbox relay publishes events that come one at a time at once, and gathers a pile of
them into batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import MetaData

from shared.db import create_engine, create_session_factory, unit_of_work
from shared.messaging.outbox import Outbox, OutboxRelay
from shared.messaging.tables import define_messaging_tables
from tests.support.messaging import TOPIC, withdrawn

PASS_INTERVAL = 0.5


@dataclass
class RecordingPublisher:
    """Keeps each published key with the loop time it was published at."""

    published: list[tuple[str, float]] = field(default_factory=list)
    more: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, *, topic: str, key: str, body: bytes, headers: dict[str, str]) -> None:
        self.published.append((key, asyncio.get_running_loop().time()))
        self.more.set()


@dataclass
class Relaying:
    publisher: RecordingPublisher
    write: Callable[..., Awaitable[None]]


@pytest.fixture
async def relaying(tmp_path: Path) -> AsyncIterator[Relaying]:
    metadata = MetaData()
    tables = define_messaging_tables(metadata, "relaytest")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    sessions = create_session_factory(engine)
    outbox = Outbox(tables)
    publisher = RecordingPublisher()
    relay = OutboxRelay(
        tables,
        sessions,
        publisher,
        wake=outbox.committed,
        poll_interval=30,  # only commits wake it in this test
        pass_interval=PASS_INTERVAL,
    )

    async def write(*application_ids: str) -> None:
        """Commit an event for each application, in one transaction."""
        async with unit_of_work(sessions) as session:
            for application_id in application_ids:
                await outbox.add(session, TOPIC, withdrawn(application_id, "test"))

    task = asyncio.create_task(relay.run())
    yield Relaying(publisher, write)
    relay.stop()
    await asyncio.wait_for(task, timeout=5)
    await engine.dispose()


async def published(publisher: RecordingPublisher, count: int) -> None:
    async with asyncio.timeout(5):
        while len(publisher.published) < count:
            await publisher.more.wait()
            publisher.more.clear()


async def test_an_event_after_a_quiet_spell_is_published_at_once(
    relaying: Relaying,
) -> None:
    publisher, write = relaying.publisher, relaying.write
    await asyncio.sleep(PASS_INTERVAL)  # the relay's first pass (nothing to send) is behind it
    committed_at = asyncio.get_running_loop().time()
    await write("app-1")
    await published(publisher, 1)
    [(key, at)] = publisher.published
    assert key == "app-1"
    assert at - committed_at < PASS_INTERVAL / 2


async def test_events_one_at_a_time_each_go_at_once(relaying: Relaying) -> None:
    publisher, write = relaying.publisher, relaying.write
    await asyncio.sleep(PASS_INTERVAL)
    loop = asyncio.get_running_loop()
    for number in range(1, 5):
        committed_at = loop.time()
        await write(f"app-{number}")
        await published(publisher, number)
        assert publisher.published[-1][1] - committed_at < PASS_INTERVAL / 2


async def test_after_a_pass_that_found_a_pile_the_next_events_wait_and_go_together(
    relaying: Relaying,
) -> None:
    publisher, write = relaying.publisher, relaying.write
    await asyncio.sleep(PASS_INTERVAL)
    await write("app-1", "app-2", "app-3")
    await published(publisher, 3)
    for number in range(4, 9):
        await write(f"app-{number}")
    await published(publisher, 8)

    keys = [key for key, _at in publisher.published]
    assert keys == [f"app-{number}" for number in range(1, 9)]  # in commit order
    pile_at = publisher.published[2][1]
    batch_times = [at for _key, at in publisher.published[3:]]
    assert min(batch_times) - pile_at >= PASS_INTERVAL * 0.9  # no pass before the interval
    assert max(batch_times) - min(batch_times) < PASS_INTERVAL / 2  # one pass took all five


async def test_a_quiet_relay_looks_for_other_processes_rows_less_often(tmp_path: Path) -> None:
    tables = define_messaging_tables(MetaData(), "relaytest")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    relay = OutboxRelay(
        tables,
        create_session_factory(engine),
        RecordingPublisher(),
        poll_interval=0.2,
        idle_poll_interval=1.0,
        quiet_after=2.0,
    )
    assert relay._next_poll(sent=1) == 0.2
    assert relay._next_poll(sent=0) == 0.2  # events went out a moment ago
    relay._last_sent_at -= 2.5
    assert relay._next_poll(sent=0) == 1.0
    assert relay._next_poll(sent=3) == 0.2
    await engine.dispose()
