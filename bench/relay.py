"""Outbox -> relay -> Tansu -> inbox: throughput, end-to-end latency, and idle consumer CPU.

Run with ``make bench`` (or ``python -m bench.relay --events 2000``). Prints its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable

from shared.contracts.envelope import Envelope
from shared.contracts.intake import ApplicationWithdrawn
from shared.db import unit_of_work
from tests.support.messaging import TOPIC, Harness, withdrawn
from tests.support.processes import Tansu, free_port


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def throughput_and_latency(database_url: str, bootstrap: str, events: int) -> None:
    harness = await Harness.create(database_url, bootstrap, f"b{uuid.uuid4().hex[:8]}")
    written_at: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()

    async def measure(event: Envelope[ApplicationWithdrawn]) -> None:
        started = written_at.get(str(event.event_id))
        if started is not None:
            latencies.append(time.perf_counter() - started)
        if len(latencies) >= events:
            done.set()

    await harness.start_consumer(before=measure)
    await harness.start_relay()
    await asyncio.sleep(3)  # let the consumer group settle before timing
    started = time.perf_counter()
    for index in range(events):
        event = withdrawn(f"app-{index % 50}", f"bench {index}")
        async with unit_of_work(harness.sessions) as session:
            await harness.outbox.add(session, TOPIC, event)
        written_at[str(event.event_id)] = time.perf_counter()
        if index % 20 == 0:
            await asyncio.sleep(0)  # paced writers, as requests arrive
    await asyncio.wait_for(done.wait(), timeout=300)
    elapsed = time.perf_counter() - started
    backend = database_url.split(":", 1)[0]
    print(
        f"{backend:22} {events} events in {elapsed:.2f}s = {events / elapsed:,.0f} events/s; "
        f"commit->handled p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
    )
    await harness.close()


async def idle_cpu(bootstrap: str, database_url: str, wait_ms: int, subscribers: int) -> float:
    """CPU seconds per wall second spent by idle subscribers polling an empty topic."""
    harnesses = []
    for _ in range(subscribers):
        harness = await Harness.create(
            database_url, bootstrap, f"i{uuid.uuid4().hex[:8]}", kafka_fetch_max_wait_ms=wait_ms
        )
        await harness.start_consumer()
        harnesses.append(harness)
    await asyncio.sleep(3)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    await asyncio.sleep(5)
    share = (time.process_time() - cpu_before) / (time.perf_counter() - wall_before)
    for harness in harnesses:
        await harness.close()
    return share


async def main(events: int, postgres_url: str | None) -> None:
    tansu = Tansu(port=free_port())
    tansu.start()
    sqlite_url = f"sqlite+aiosqlite:////tmp/grantflow-bench-{uuid.uuid4().hex[:8]}.db"
    try:
        print("== outbox -> relay -> Tansu -> inbox (one relay, one consumer) ==")
        runs: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("sqlite", lambda: throughput_and_latency(sqlite_url, tansu.bootstrap, events))
        ]
        if postgres_url:
            runs.append(
                ("postgres", lambda: throughput_and_latency(postgres_url, tansu.bootstrap, events))
            )
        for _name, run in runs:
            await run()
        print("== idle CPU of 10 subscribers by fetch_max_wait_ms (share of one core) ==")
        for wait_ms in (1, 10, 100, 500):
            share = await idle_cpu(tansu.bootstrap, sqlite_url, wait_ms, 10)
            print(f"fetch_max_wait_ms={wait_ms:<4} idle CPU {share * 100:.1f}% of one core")
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
