"""The outbox relay publishes a lone event at once and gathers a stream of them into batches."""

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
    write: Callable[[str], Awaitable[None]]


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

    async def write(application_id: str) -> None:
        async with unit_of_work(sessions) as session:
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


async def test_events_committed_right_after_a_pass_wait_for_the_interval_and_go_together(
    relaying: Relaying,
) -> None:
    publisher, write = relaying.publisher, relaying.write
    await asyncio.sleep(PASS_INTERVAL)
    await write("app-1")
    await published(publisher, 1)
    for number in range(2, 7):
        await write(f"app-{number}")
    await published(publisher, 6)

    keys = [key for key, _at in publisher.published]
    assert keys == [f"app-{number}" for number in range(1, 7)]  # in commit order
    first_at = publisher.published[0][1]
    batch_times = [at for _key, at in publisher.published[1:]]
    assert min(batch_times) - first_at >= PASS_INTERVAL * 0.9  # no pass before the interval
    assert max(batch_times) - min(batch_times) < PASS_INTERVAL / 2  # one pass took all five
