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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import create_database, drop_database, percentile
from grantflow.stack.infrastructure import Tansu, free_port
from services.disbursement.app import create_app
from services.disbursement.consumers import consumers
from services.disbursement.finance_sim import run_finance_sim
from services.disbursement.persistence import messaging, metadata
from services.disbursement.service import DisbursementService
from services.disbursement.settings import DisbursementSettings
from shared.contracts.envelope import Envelope, new_envelope
from shared.contracts.finance import PaymentSettled
from shared.contracts.money import Money
from shared.contracts.topics import (
    DISBURSEMENT_SETTLED,
    PAY_TRANCHE,
    PAYMENT_SETTLED,
    RESERVE_FUNDS,
)
from shared.contracts.workflows import PayTranche, ReserveFunds
from shared.messaging.consumers import consumer_handlers
from shared.messaging.epoch import prepare_broker
from shared.messaging.outbox import message_headers
from shared.migrations import upgrade
from shared.service import build_runtime, topic_layout


def usd(amount_minor: int) -> Money:
    return Money(amount_minor=amount_minor, currency="USD")


def command(payload: ReserveFunds | PayTranche) -> Envelope[ReserveFunds | PayTranche]:
    return new_envelope(payload, producer="workflows", application_id=payload.application_id)


def reserve(application_id: str, program: str) -> Envelope[ReserveFunds | PayTranche]:
    return command(
        ReserveFunds(
            command_id=f"{application_id}:reserve",
            idempotency_key=f"{application_id}:reservation",
            application_id=application_id,
            program_code=program,
            cycle="2027",
            amount=usd(100_000),
        )
    )


def pay(application_id: str, program: str) -> Envelope[ReserveFunds | PayTranche]:
    return command(
        PayTranche(
            command_id=f"{application_id}:pay:1",
            idempotency_key=f"{application_id}:1",
            application_id=application_id,
            program_code=program,
            cycle="2027",
            tranche=1,
            amount=usd(70_000),
            payee_reference="payee-1",
            memo=f"tranche 1 of {application_id}",
        )
    )


def settled(application_id: str) -> Envelope[PaymentSettled]:
    notice = PaymentSettled(
        instruction_id=f"{application_id}:1",
        finance_reference=f"FIN-{application_id}",
        amount=usd(70_000),
    )
    return new_envelope(notice, producer="finance", application_id=application_id)


async def ledger_throughput(database_url: str, applications: int, workers: int) -> None:
    """Reserve, instruct and settle one tranche per application, all on one program budget.

    Each message goes through the service's consumer handlers (inbox, command receipts,
    use case), called in process: the figure is the ledger's and the consumer's, not Kafka's.
    """
    await asyncio.to_thread(upgrade, "disbursement", database_url)
    settings = DisbursementSettings(database_url=database_url)
    service = DisbursementService(build_runtime(settings, metadata, messaging), settings)
    handlers = {
        topic: handler for topic, handler in consumer_handlers(service, consumers(service)).items()
    }
    program = f"B{uuid.uuid4().hex[:8]}"
    async with service.work() as work:
        await service.set_budget(work, program, "2027", usd(10**12), "benchmark budget")
    queue: asyncio.Queue[str] = asyncio.Queue()
    for index in range(applications):
        queue.put_nowait(f"{program}-{index}")

    async def worker() -> None:
        while not queue.empty():
            app = queue.get_nowait()
            await handlers[RESERVE_FUNDS](reserve(app, program))
            await handlers[PAY_TRANCHE](pay(app, program))
            await handlers[PAYMENT_SETTLED](settled(app))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - started
    async with service.reading() as work:
        report = await service.budget_report(work, program, "2027")
    assert report.disbursed == usd(70_000 * applications), report
    backend = database_url.split(":", 1)[0]
    print(
        f"{backend:22} {applications} x (reserve, pay, settle) with {workers} workers on one "
        f"budget: {elapsed:.2f}s = {3 * applications / elapsed:,.0f} ledger operations/s"
    )
    await service.runtime.engine.dispose()


async def pay_to_settled_latency(database_url: str, payments: int) -> None:
    """PayTranche published -> instruction -> finance simulator -> DisbursementSettled seen."""
    tansu = Tansu(port=free_port())
    tansu.start()
    prefix = f"b{uuid.uuid4().hex[:8]}."
    program = prefix.rstrip(".").upper()
    stop = asyncio.Event()
    settings = DisbursementSettings(
        database_url=database_url,
        kafka_bootstrap_servers=tansu.bootstrap,
        topic_prefix=prefix,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=300,
    )
    latencies: list[float] = []
    try:
        await prepare_broker(tansu.bootstrap, topic_layout(settings), prefix)
        app = create_app(settings)
        service: DisbursementService = app.state.service
        async with app.router.lifespan_context(app):
            async with service.work() as work:
                await service.set_budget(work, program, "2027", usd(10**12), "benchmark budget")
            simulator = asyncio.create_task(
                run_finance_sim(
                    settings, delay_seconds=0, failure_rate=0, duplicate_rate=0, seed=1, stop=stop
                )
            )
            producer = AIOKafkaProducer(bootstrap_servers=tansu.bootstrap, enable_idempotence=False)
            watcher = AIOKafkaConsumer(
                DISBURSEMENT_SETTLED.qualified(prefix),
                bootstrap_servers=tansu.bootstrap,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=10,
            )
            await producer.start()
            await watcher.start()

            async def send(envelope: Envelope[ReserveFunds | PayTranche]) -> None:
                topic = RESERVE_FUNDS if isinstance(envelope.payload, ReserveFunds) else PAY_TRANCHE
                await producer.send_and_wait(
                    topic.qualified(prefix),
                    envelope.model_dump_json().encode(),
                    key=envelope.application_id.encode(),
                    headers=[(k, v.encode()) for k, v in message_headers(envelope).items()],
                )

            try:
                for index in range(payments):
                    await send(reserve(f"{program}-{index}", program))
                await asyncio.sleep(3)  # reservations done, simulator's group joined
                for index in range(payments):
                    application = f"{program}-{index}"
                    started = time.perf_counter()
                    await send(pay(application, program))
                    async for record in watcher:
                        if record.key == application.encode():
                            break
                    latencies.append(time.perf_counter() - started)
            finally:
                await watcher.stop()
                await producer.stop()
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
        async with asyncio.timeout(2):
            return await create_database()
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return None


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
            await drop_database(postgres)


if __name__ == "__main__":
    asyncio.run(main())
