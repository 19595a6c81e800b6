"""Disbursement: ledger throughput on one budget, and pay -> settled latency over Tansu.

Run with ``python -m bench.disbursement_ledger --applications 300`` (PostgreSQL at
127.0.0.1:5432 is used when it answers). Prints its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid

import asyncpg

from shared.contracts.topics import DISBURSEMENT_SETTLED, PAY_TRANCHE, RESERVE_FUNDS
from tests.support.disbursement import (
    Ledger,
    Publisher,
    TopicWatcher,
    pay,
    reserve,
    running_service,
    settled,
    usd,
)
from tests.support.processes import Tansu, free_port

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def ledger_throughput(database_url: str, applications: int, workers: int) -> None:
    """Reserve, instruct and settle one tranche per application, all on one program budget.

    Each message goes through the service's consumer (inbox, command receipts, use case),
    delivered in memory: the figure is the ledger's and the consumer's, not Kafka's.
    """
    ledger = await Ledger.create(database_url)
    program = f"B{uuid.uuid4().hex[:8]}"
    await ledger.budget(program, usd(10**12))
    queue: asyncio.Queue[str] = asyncio.Queue()
    for index in range(applications):
        queue.put_nowait(f"{program}-{index}")

    async def worker() -> None:
        while not queue.empty():
            app = queue.get_nowait()
            await ledger.run(reserve(app, usd(100_000), program=program))
            await ledger.run(pay(app, 1, usd(70_000), program=program))
            await ledger.finance(settled(f"{app}:1", usd(70_000)))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - started
    report = await ledger.report(program)
    assert report.disbursed == usd(70_000 * applications)
    backend = database_url.split(":", 1)[0]
    print(
        f"{backend:22} {applications} x (reserve, pay, settle) with {workers} workers on one "
        f"budget: {elapsed:.2f}s = {3 * applications / elapsed:,.0f} ledger operations/s"
    )
    await ledger.close()


async def pay_to_settled_latency(database_url: str, payments: int) -> None:
    """PayTranche published -> instruction -> finance simulator -> DisbursementSettled seen."""
    from services.disbursement.finance_sim import run_finance_sim
    from shared.settings import CommonSettings

    tansu = Tansu(port=free_port())
    tansu.start()
    prefix = f"b{uuid.uuid4().hex[:8]}."
    program = prefix.rstrip(".").upper()
    stop = asyncio.Event()
    try:
        async with running_service(tansu.bootstrap, database_url, prefix) as service:
            settings = CommonSettings(
                kafka_bootstrap_servers=tansu.bootstrap,
                topic_prefix=prefix,
                kafka_session_timeout_ms=2000,
                kafka_heartbeat_interval_ms=300,
            )
            simulator = asyncio.create_task(
                run_finance_sim(
                    settings,
                    delay_seconds=0,
                    failure_rate=0,
                    duplicate_rate=0,
                    seed=1,
                    stop=stop,
                )
            )
            await service.client.put(
                f"/v1/budgets/{program}/2027",
                json={"amount": {"amount_minor": 10**12, "currency": "USD"}},
                headers=service.officer,
            )
            settled_topic = DISBURSEMENT_SETTLED.qualified(prefix)
            async with (
                TopicWatcher(tansu.bootstrap, [settled_topic]) as watcher,
                Publisher(tansu.bootstrap, prefix) as publisher,
            ):
                for index in range(payments):
                    await publisher.send(
                        RESERVE_FUNDS, reserve(f"{program}-{index}", usd(100), program=program)
                    )
                await asyncio.sleep(3)  # reservations done, simulator's group joined
                latencies: list[float] = []
                for index in range(payments):
                    app = f"{program}-{index}"
                    started = time.perf_counter()
                    await publisher.send(PAY_TRANCHE, pay(app, 1, usd(70), program=program))
                    await watcher.wait_for(settled_topic, application_id=app)
                    latencies.append(time.perf_counter() - started)
            stop.set()
            await simulator
    finally:
        tansu.stop()
    backend = database_url.split(":", 1)[0]
    print(
        f"{backend:22} pay -> settled over Tansu (4 hops, simulator without delay), "
        f"{payments} payments one at a time: p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms"
    )


async def postgres_database() -> str | None:
    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return None
    name = f"grantflow_bench_{uuid.uuid4().hex[:8]}"
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def drop(url: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN)
    await connection.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--applications", type=int, default=300)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--payments", type=int, default=50)
    options = parser.parse_args()
    urls = [f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"]
    postgres = await postgres_database()
    if postgres:
        urls.append(postgres)
    try:
        for url in urls:
            await ledger_throughput(url, options.applications, options.workers)
        await pay_to_settled_latency(urls[-1], options.payments)
    finally:
        if postgres:
            await drop(postgres)


if __name__ == "__main__":
    asyncio.run(main())
