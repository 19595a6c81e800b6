"""Replicas of a service on one PostgreSQL database: one relays and runs the jobs, others wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.settings import IntakeSettings
from shared.db import create_engine, create_session_factory, unit_of_work
from shared.lease import Lease
from shared.messaging.outbox import Outbox, OutboxRelay
from shared.messaging.tables import MessagingTables, define_messaging_tables
from shared.service import ServiceRuntime, build_runtime
from tests.support.messaging import TOPIC, eventually, withdrawn
from tests.support.processes import Tansu

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
        lease=Lease(engine, name, confirm_every=STANDBY),
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


async def test_background_jobs_run_in_one_replica_and_move_when_it_stops(
    postgres_url: str, tansu: Tansu, unique: str
) -> None:
    metadata = MetaData()
    tables = define_messaging_tables(metadata, unique)
    settings = IntakeSettings(
        environment="test",
        database_url=postgres_url,
        kafka_bootstrap_servers=tansu.bootstrap,
        topic_prefix=f"{unique}.",
    )
    ran: list[str] = []

    def replica_runtime(name: str) -> ServiceRuntime:
        runtime = build_runtime(settings, metadata, tables)

        async def job() -> None:
            ran.append(name)
            await asyncio.Event().wait()  # a long-lived loop, like a mail relay

        runtime.add_job(job)
        return runtime

    first, second = replica_runtime("first"), replica_runtime("second")
    running = [first, second]
    for runtime in running:
        await runtime.start()
    try:

        async def one_ran() -> bool:
            return len(ran) == 1

        await eventually(one_ran, timeout=10)
        await asyncio.sleep(2.5)  # the other replica tried again and stood by
        assert len(ran) == 1
        leader = first if ran == ["first"] else second
        running.remove(leader)
        await leader.stop()

        async def moved() -> bool:
            return len(ran) == 2

        await eventually(moved, timeout=10)
        assert set(ran) == {"first", "second"}
    finally:
        for runtime in running:
            await runtime.stop()
