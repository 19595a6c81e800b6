"""Two replicas of a service on one PostgreSQL database: one relay publishes, the other waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, create_session_factory, unit_of_work
from shared.messaging.outbox import Outbox, OutboxRelay, RelayLease
from shared.messaging.tables import MessagingTables, define_messaging_tables
from tests.support.messaging import TOPIC, eventually, withdrawn

STANDBY = 0.2


@dataclass
class Replica:
    """One process's relay, with its own engine (its own connections) and what it published."""

    engine: AsyncEngine
    relay: OutboxRelay
    published: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        self.relay.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=5)
        await self.engine.dispose()


def replica(database_url: str, tables: MessagingTables, name: str) -> Replica:
    engine = create_engine(database_url)
    published: list[str] = []

    async def publish(*, topic: str, key: str, body: bytes, headers: dict[str, str]) -> None:
        published.append(key)

    relay = OutboxRelay(
        tables,
        create_session_factory(engine),
        publish,
        poll_interval=0.05,
        lease=RelayLease(engine, name),
        standby_interval=STANDBY,
    )
    running = Replica(engine, relay, published)
    running.task = asyncio.create_task(relay.run())
    return running


@pytest.fixture
async def tables(postgres_url: str, unique: str) -> AsyncIterator[MessagingTables]:
    metadata = MetaData()
    messaging = define_messaging_tables(metadata, unique)
    engine = create_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield messaging
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
    await engine.dispose()


async def write(database_url: str, tables: MessagingTables, *application_ids: str) -> None:
    engine = create_engine(database_url)
    outbox = Outbox(tables)
    try:
        for application_id in application_ids:
            async with unit_of_work(create_session_factory(engine)) as session:
                await outbox.add(session, TOPIC, withdrawn(application_id, "lease test"))
    finally:
        await engine.dispose()


async def test_one_replica_relays_and_the_other_takes_over_when_it_stops(
    postgres_url: str, tables: MessagingTables, unique: str
) -> None:
    first = replica(postgres_url, tables, unique)

    async def first_leads() -> bool:
        return first.relay.leading

    await eventually(first_leads, timeout=10)
    second = replica(postgres_url, tables, unique)
    await asyncio.sleep(STANDBY * 3)  # the second has tried and found the lease taken
    assert not second.relay.leading

    await write(postgres_url, tables, "app-1", "app-2", "app-3")

    async def first_published_three() -> bool:
        return len(first.published) == 3

    await eventually(first_published_three, timeout=10)
    await asyncio.sleep(STANDBY * 3)
    assert first.published == ["app-1", "app-2", "app-3"]
    assert second.published == []

    await first.stop()  # closing its connection frees the lease
    await write(postgres_url, tables, "app-4", "app-5")

    async def second_took_over() -> bool:
        return len(second.published) == 2

    await eventually(second_took_over, timeout=10)
    assert second.published == ["app-4", "app-5"]
    assert second.relay.leading
    await second.stop()
