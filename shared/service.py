"""Composition of one service process: database, broker, outbox relay, HTTP app.

Each service's ``create_app(settings)`` calls ``build_runtime`` and ``create_service_app``;
nothing connects at import time, and everything starts and stops with the app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI
from faststream.kafka import KafkaBroker
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import create_engine, create_session_factory, is_sqlite, ping
from shared.http import BodySizeLimit, add_operational_routes
from shared.lease import Lease
from shared.logging import configure_logging
from shared.messaging.broker import create_broker
from shared.messaging.deadletter import DeadLetterPolicy
from shared.messaging.inbox import Inbox
from shared.messaging.outbox import Outbox, OutboxRelay
from shared.messaging.tables import MessagingTables
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)


@functools.cache
def freeze_startup_heap() -> None:
    """Move what start-up allocated out of the collector's sight, once per process.

    The framework, ORM and pydantic leave hundreds of thousands of long-lived objects; a full
    collection walking them paused the intake service for about 70 ms under load, which
    is most of a p99 budget. Frozen, a full collection took under 10 ms.
    """
    gc.collect()
    gc.freeze()


def _log_job_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("background job %s failed", task.get_name(), exc_info=task.exception())


@dataclass
class ServiceRuntime:
    settings: ServiceSettings
    metadata: MetaData
    tables: MessagingTables
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    broker: KafkaBroker
    dead_letters: DeadLetterPolicy
    outbox: Outbox
    relay: OutboxRelay
    jobs_lease: Lease | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    jobs: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)

    def inbox(self, handler_name: str) -> Inbox:
        return Inbox(self.tables, self.sessions, f"{self.settings.service_name}.{handler_name}")

    async def start(self) -> None:
        await self.broker.start()
        self.background.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        if self.jobs:
            self.background.append(asyncio.create_task(self._run_jobs(), name="jobs"))

    def add_job(self, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``job`` (a long-lived loop, e.g. a deadline scanner) while the service runs.

        With replicas on PostgreSQL the jobs run in one of them at a time, the holder of
        the service's jobs lease, so that mail goes out once and a deadline fires once.
        """
        self.jobs.append(job)

    async def _run_jobs(self, standby: float = 2.0) -> None:
        lease = self.jobs_lease
        while True:
            try:
                leading = lease is None or await lease.keep()
            except Exception as error:  # the database is away: keep trying
                logger.warning("could not take the jobs lease: %r", error)
                leading = False
            if not leading:
                await asyncio.sleep(standby)
                continue
            jobs = [asyncio.create_task(job(), name=job.__name__) for job in self.jobs]
            for task in jobs:
                task.add_done_callback(_log_job_failure)
            try:
                if lease is None:
                    await asyncio.gather(*jobs, return_exceptions=True)
                    return
                while True:
                    await asyncio.sleep(standby)
                    if not await lease.keep():
                        break
                logger.warning("jobs lease lost; stopping the jobs until it is taken again")
            finally:
                for task in jobs:
                    task.cancel()
                await asyncio.gather(*jobs, return_exceptions=True)
                if lease is not None:
                    await lease.release()

    async def stop(self) -> None:
        self.relay.stop()
        for task in self.background[1:]:
            task.cancel()
        for task in self.background:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, timeout=5)
        await self.broker.stop()
        await self.engine.dispose()


def build_runtime(
    settings: ServiceSettings, metadata: MetaData, tables: MessagingTables
) -> ServiceRuntime:
    engine = create_engine(settings.effective_database_url())
    sessions = create_session_factory(engine)
    broker, dead_letters = create_broker(settings, client_id=f"grantflow-{settings.service_name}")
    outbox = Outbox(tables, settings.topic_prefix)
    assert dead_letters.publish is not None
    # SQLite is one host's embedded database, run by one process per service: no leases.
    leased = not is_sqlite(str(engine.url))
    relay = OutboxRelay(
        tables,
        sessions,
        dead_letters.publish,
        wake=outbox.committed,
        poll_interval=settings.outbox_poll_interval_ms / 1000,
        pass_interval=settings.outbox_pass_interval_ms / 1000,
        lease=Lease(engine, settings.service_name) if leased else None,
    )
    return ServiceRuntime(
        settings=settings,
        metadata=metadata,
        tables=tables,
        engine=engine,
        sessions=sessions,
        broker=broker,
        dead_letters=dead_letters,
        outbox=outbox,
        relay=relay,
        jobs_lease=Lease(engine, f"{settings.service_name}:jobs") if leased else None,
    )


def create_service_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    settings = runtime.settings
    configure_logging(settings.service_name, settings.log_level, settings.log_format)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        freeze_startup_heap()
        logger.info(
            "%s ready on %s:%s", settings.service_name, settings.http_host, settings.http_port
        )
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan)
    app.state.runtime = runtime
    for router in routers:
        app.include_router(router)

    async def broker_ready() -> None:
        if not await runtime.broker.ping(timeout=2.0):
            raise ConnectionError("Kafka broker does not answer")

    add_operational_routes(
        app,
        service=settings.service_name,
        readiness_checks={"database": lambda: ping(runtime.engine), "broker": broker_ready},
        counters={
            "outbox_published_total": (
                "events relayed from the outbox",
                lambda: runtime.relay.published_total,
            ),
            "dead_lettered_total": (
                "messages sent to a dead-letter topic",
                lambda: runtime.dead_letters.dead_lettered,
            ),
        },
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
