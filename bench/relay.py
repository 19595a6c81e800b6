"""Outbox -> relay -> Tansu -> inbox: throughput, end-to-end latency, and idle consumer CPU.

The pieces are the ones every service runs (``shared.service.build_runtime``: outbox,
relay, broker-epoch watch, the consumer table with its inbox), around a service whose one
use case notes when each event arrived.

Run with ``make bench`` (or ``python -m bench.relay --events 2000``). Prints its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import ClassVar

from pydantic_settings import SettingsConfigDict
from sqlalchemy import MetaData

from bench.common import percentile
from grantflow.stack.infrastructure import Tansu, free_port
from shared.contracts.envelope import Envelope, new_envelope
from shared.contracts.intake import ApplicationWithdrawn
from shared.contracts.topics import APPLICATION_WITHDRAWN
from shared.messaging.consumers import register_consumers
from shared.messaging.epoch import prepare_broker
from shared.messaging.tables import define_messaging_tables
from shared.service import Service, ServiceRuntime, Work, build_runtime, topic_layout
from shared.settings import ServiceSettings


class BenchSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRANTFLOW_BENCH_", extra="ignore")
    service_name: ClassVar[str] = "bench"


class Arrivals(Service):
    """Notes when each event reached its use case."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        super().__init__(runtime)
        self.arrived: dict[str, float] = {}
        self.expected = 0
        self.all_in = asyncio.Event()

    async def note(self, work: Work, event: Envelope[ApplicationWithdrawn]) -> None:
        self.arrived[str(event.event_id)] = time.perf_counter()
        if len(self.arrived) >= self.expected:
            self.all_in.set()


def sqlite_file() -> str:
    return f"sqlite+aiosqlite:////tmp/grantflow-bench-{uuid.uuid4().hex[:8]}.db"


def withdrawn(application_id: str, reason: str) -> Envelope[ApplicationWithdrawn]:
    return new_envelope(
        ApplicationWithdrawn(application_id=application_id, member_id="m-1", reason=reason),
        producer="intake",
        application_id=application_id,
    )


async def running_service(database_url: str, bootstrap: str, **settings: object) -> Arrivals:
    metadata = MetaData()
    tables = define_messaging_tables(metadata, BenchSettings.service_name)
    config = BenchSettings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=f"b{uuid.uuid4().hex[:8]}.",
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=300,
        **settings,  # type: ignore[arg-type]
    )
    await prepare_broker(bootstrap, topic_layout(config), config.topic_prefix)
    runtime = build_runtime(config, metadata, tables)
    async with runtime.engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
        await connection.run_sync(metadata.create_all)
    service = Arrivals(runtime)
    register_consumers(service, {APPLICATION_WITHDRAWN: service.note})
    await runtime.start()
    return service


async def throughput_and_latency(database_url: str, bootstrap: str, events: int) -> None:
    service = await running_service(database_url, bootstrap)
    runtime = service.runtime
    service.expected = events
    written_at: dict[str, float] = {}
    await asyncio.sleep(3)  # let the consumer group settle before timing
    started = time.perf_counter()
    for index in range(events):
        event = withdrawn(f"app-{index % 50}", f"bench {index}")
        async with runtime.sessions() as session, session.begin():
            await runtime.outbox.add(session, APPLICATION_WITHDRAWN, event)
        written_at[str(event.event_id)] = time.perf_counter()
        if index % 20 == 0:
            await asyncio.sleep(0)  # paced writers, as requests arrive
    await asyncio.wait_for(service.all_in.wait(), timeout=300)
    elapsed = time.perf_counter() - started
    latencies = [service.arrived[key] - written_at[key] for key in written_at]
    backend = database_url.split(":", 1)[0]
    print(
        f"{backend:22} {events} events in {elapsed:.2f}s = {events / elapsed:,.0f} events/s; "
        f"commit->handled p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
    )
    await runtime.stop()


async def paced_hops(database_url: str, bootstrap: str, rate: float, seconds: float) -> None:
    """Commit->handled latency of events written one at a time at ``rate`` per second, and
    of single events after quiet spells (the consumer's fetch wait is then the idle one)."""
    service = await running_service(database_url, bootstrap)
    runtime = service.runtime
    await asyncio.sleep(3)  # let the consumer group settle before timing

    async def one_hop(index: int) -> float:
        event = withdrawn(f"app-{index % 50}", f"bench {index}")
        service.expected = len(service.arrived) + 1
        service.all_in.clear()
        async with runtime.sessions() as session, session.begin():
            await runtime.outbox.add(session, APPLICATION_WITHDRAWN, event)
        written_at = time.perf_counter()
        await asyncio.wait_for(service.all_in.wait(), timeout=30)
        return service.arrived[str(event.event_id)] - written_at

    hops: list[float] = []
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    for index in range(int(rate * seconds)):
        hops.append(await one_hop(index))
        next_at += 1 / rate
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    print(
        f"{len(hops)} events one at a time at {rate:g}/s: commit->handled "
        f"p50 {percentile(hops, 0.5) * 1000:.1f} ms, p99 {percentile(hops, 0.99) * 1000:.1f} ms"
    )
    after_quiet: list[float] = []
    for index in range(5):
        await asyncio.sleep(runtime.settings.kafka_fetch_quiet_after_ms / 1000 + 1)
        after_quiet.append(await one_hop(10_000 + index))
    print(
        "the first event after a quiet spell: "
        + ", ".join(f"{hop * 1000:.0f}" for hop in after_quiet)
        + " ms"
    )
    await runtime.stop()


async def idle_cpu(bootstrap: str, subscribers: int, **settings: object) -> float:
    """CPU seconds per wall second spent by idle services (consumer, relay, epoch watch)."""
    services = [
        await running_service(sqlite_file(), bootstrap, **settings) for _ in range(subscribers)
    ]
    await asyncio.sleep(3)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    await asyncio.sleep(5)
    share = (time.process_time() - cpu_before) / (time.perf_counter() - wall_before)
    for service in services:
        await service.runtime.stop()
    return share


async def main(events: int, postgres_url: str | None) -> None:
    tansu = Tansu(port=free_port())
    tansu.start()
    sqlite_url = sqlite_file()
    try:
        print("== outbox -> relay -> Tansu -> inbox (one relay, one consumer) ==")
        runs: list[Callable[[], Awaitable[None]]] = [
            lambda: throughput_and_latency(sqlite_url, tansu.bootstrap, events)
        ]
        if postgres_url:
            runs.append(lambda: throughput_and_latency(postgres_url, tansu.bootstrap, events))
        for run in runs:
            await run()
        print("== one hop at a time (consumer fetch wait 5 ms busy, 500 ms idle) ==")
        await paced_hops(sqlite_url, tansu.bootstrap, rate=50, seconds=10)
        print("== idle CPU of 10 services (share of one core) ==")
        share = await idle_cpu(tansu.bootstrap, 10)
        print(f"fetch wait 5 ms busy, 500 ms idle (the default): {share * 100:.1f}%")
        for wait_ms in (10, 100, 500):
            share = await idle_cpu(
                tansu.bootstrap,
                10,
                kafka_fetch_max_wait_ms=wait_ms,
                kafka_idle_fetch_max_wait_ms=wait_ms,
            )
            print(f"fetch wait always {wait_ms} ms: {share * 100:.1f}%")
    finally:
        tansu.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("GRANTFLOW_BENCH_POSTGRES_URL"),
        help="an empty PostgreSQL database URL (postgresql+asyncpg://...) to bench as well",
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.postgres))
