"""One shape for every service: its runtime, its use cases, its app.

- ``build_runtime`` composes a service process: database, broker, outbox and relay,
  command receipts, dead letters, the broker-epoch watch, mail, background jobs.
  Nothing connects at import time; everything starts and stops with the app's lifespan.
- ``Service`` is the base of a service's use cases. A use case takes a ``Work`` (one
  transaction, and what commits with it: events, mail) and never commits; whoever opened
  the work (a route, a consumer, a job) commits it by leaving ``service.work()``.
- ``the_service`` is the one dependency through which routes get their service.
- ``create_service_app`` builds the HTTP app with health, readiness, metrics, auth, the
  error vocabulary and the body-size limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from faststream.kafka import KafkaBroker
from pydantic import BaseModel
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.auth import Auth
from shared.clock import Clock, utc_now
from shared.contracts.envelope import Envelope, configure_event_ids, new_envelope
from shared.contracts.topics import Topic
from shared.db import create_engine, create_session_factory, is_sqlite, ping
from shared.errors import install_error_handlers
from shared.http import BodySizeLimit, JsonGuard, ReadinessCheck, add_operational_routes
from shared.lease import Lease
from shared.logging import configure_logging
from shared.mail import Mail, Mailer, MailQueue, MailRelay, create_mailer
from shared.messaging.broker import create_broker
from shared.messaging.deadletter import DeadLetterPolicy, DeadLetterStore
from shared.messaging.epoch import EpochRecord, EpochWatch, faststream_consumers
from shared.messaging.inbox import Inbox
from shared.messaging.outbox import Outbox, OutboxRelay, prune_sent
from shared.messaging.receipts import CommandReceipts
from shared.messaging.tables import MessagingTables
from shared.messaging.topics_admin import TopicLayout
from shared.settings import CommonSettings, ServiceSettings
from shared.telemetry.gauges import Gauges, consumer_lag, serve_gauges
from shared.telemetry.tracing import configure_tracing, trace_consumers, trace_http

logger = logging.getLogger(__name__)

PayloadT = TypeVar("PayloadT", bound=BaseModel)
ServiceT = TypeVar("ServiceT", bound="Service")
Job = Callable[[], Coroutine[Any, Any, None]]

# How often sent outbox rows past their retention are forgotten.
PRUNE_INTERVAL = timedelta(hours=1)


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


def topic_layout(settings: CommonSettings) -> TopicLayout:
    return TopicLayout(
        partitions=settings.kafka_topic_partitions,
        replication_factor=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
    )


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
    receipts: CommandReceipts
    epoch: EpochWatch
    mail: MailQueue
    gauges: Gauges
    jobs_lease: Lease | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.settings.service_name

    def inbox(self, consumer: str) -> Inbox:
        return Inbox(self.tables, self.sessions, f"{self.name}.{consumer}")

    async def start(self) -> None:
        await self.broker.start()
        self.background.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        self.background.append(asyncio.create_task(self.epoch.run(), name="broker-epoch"))
        self.background.append(asyncio.create_task(self.gauges.run(), name="gauges"))
        if self.jobs:
            self.background.append(asyncio.create_task(self._run_jobs(), name="jobs"))

    def add_job(self, job: Job) -> None:
        """Run ``job`` (a long-lived loop, e.g. a deadline scanner) while the service runs.

        With replicas on PostgreSQL the jobs run in one of them at a time, the holder of
        the service's jobs lease, so that mail goes out once and a deadline fires once.
        """
        self.jobs.append(job)

    def send_mail_with(self, mailer: Mailer | None = None, *, poll_interval: float = 1.0) -> None:
        """Send what use cases queue with ``Work.mail``, through ``mailer`` (default: settings)."""
        relay = MailRelay(
            self.tables,
            self.sessions,
            mailer or create_mailer(self.settings),
            poll_interval=poll_interval,
        )
        self.add_job(relay.run)

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
    tracing = configure_tracing(settings, settings.service_name)
    # The workflow derives command ids in workflow code; every process keys them alike.
    configure_event_ids(
        settings.event_id_secret.get_secret_value() if settings.event_id_secret else None
    )
    url = settings.effective_database_url()
    pool: dict[str, Any] = {}
    if not is_sqlite(url):
        pool = {
            "pool_size": settings.database_pool_size,
            "max_overflow": settings.database_max_overflow,
        }
    engine = create_engine(url, **pool)
    sessions = create_session_factory(engine)
    outbox = Outbox(tables, settings.topic_prefix)
    broker, dead_letters = create_broker(
        settings,
        client_id=f"grantflow-{settings.service_name}",
        store=DeadLetterStore(tables, sessions, outbox),
    )
    if tracing:
        trace_consumers(broker, settings.service_name)
    assert dead_letters.publish is not None
    retention = timedelta(hours=settings.outbox_retention_hours)
    epoch = EpochWatch(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        layout=topic_layout(settings),
        prefix=settings.topic_prefix,
        record=EpochRecord(tables, sessions, retention, settings.topic_prefix),
        consumers=lambda: faststream_consumers(broker),
        on_republish=lambda: relay.wake(),
        interval=settings.broker_epoch_check_ms / 1000,
        connection=settings.kafka_security(),
    )
    # SQLite is one host's embedded database, run by one process per service: no leases.
    leased = not is_sqlite(url)
    relay = OutboxRelay(
        tables,
        sessions,
        dead_letters.publish,
        wake=outbox.committed,
        poll_interval=settings.outbox_poll_interval_ms / 1000,
        idle_poll_interval=settings.outbox_idle_poll_interval_ms / 1000,
        pass_interval=settings.outbox_pass_interval_ms / 1000,
        lease=Lease(engine, settings.service_name) if leased else None,
        before_pass=epoch.ready,
        service=settings.service_name,
    )
    gauges = Gauges(settings.metrics_refresh_ms / 1000)
    gauges.add("outbox_backlog", "outbox rows not yet published", relay.pending_count)
    gauges.add_labelled(
        "consumer_lag_messages",
        "messages on the broker beyond what the consumers fetched, per topic",
        "topic",
        lambda: consumer_lag(faststream_consumers(broker)),
    )
    runtime = ServiceRuntime(
        settings=settings,
        metadata=metadata,
        tables=tables,
        engine=engine,
        sessions=sessions,
        broker=broker,
        dead_letters=dead_letters,
        outbox=outbox,
        relay=relay,
        receipts=CommandReceipts(tables, outbox),
        epoch=epoch,
        mail=MailQueue(tables),
        gauges=gauges,
        jobs_lease=Lease(engine, f"{settings.service_name}:jobs") if leased else None,
    )
    runtime.add_job(_prune_outbox(runtime, retention))
    return runtime


def _prune_outbox(runtime: ServiceRuntime, retention: timedelta) -> Job:
    async def prune_outbox() -> None:
        while True:
            try:
                async with runtime.sessions() as session, session.begin():
                    forgotten = await prune_sent(session, runtime.tables, retention)
                if forgotten:
                    logger.info("forgot %s outbox rows sent over %s ago", forgotten, retention)
            except Exception as error:  # the database is away for a while: next round
                logger.warning("outbox pruning failed: %r", error)
            await asyncio.sleep(PRUNE_INTERVAL.total_seconds())

    return prune_outbox


@dataclass
class Work:
    """One unit of work of a service: a transaction, and the events and mail it causes.

    ``cause`` is the message being handled (events caused by it carry its correlation id
    and its event id as their causation); ``subject`` files answers to a command
    (``shared.messaging.receipts``).
    """

    session: AsyncSession
    runtime: ServiceRuntime
    now: datetime
    cause: Envelope[Any] | None = None
    subject: str | None = None

    async def publish(
        self,
        topic: Topic,
        payload: PayloadT,
        *,
        application_id: str,
        event_id: uuid.UUID | None = None,
        subject: str | None = None,
        correlation_id: str | None = None,
    ) -> Envelope[PayloadT]:
        """Publish ``payload`` on ``topic`` when the work commits."""
        envelope = new_envelope(
            payload,
            producer=self.runtime.name,
            application_id=application_id,
            event_id=event_id,
            causation=self.cause,
            correlation_id=correlation_id,
            occurred_at=self.now,
        )
        await self.runtime.outbox.add(self.session, topic, envelope, subject=subject)
        return envelope

    async def answer(
        self,
        topic: Topic,
        payload: PayloadT,
        *,
        application_id: str,
        event_id: uuid.UUID | None = None,
    ) -> Envelope[PayloadT]:
        """Publish the answer to the command being handled, filed under its subject."""
        if self.subject is None:
            raise RuntimeError("answer() outside the handling of a command")
        return await self.publish(
            topic, payload, application_id=application_id, event_id=event_id, subject=self.subject
        )

    async def answer_again(self, subject: str) -> int:
        """Publish every answer filed under ``subject`` again (a repeated question)."""
        return await self.runtime.receipts.answer_again(self.session, subject)

    async def mail(self, mail: Mail, *, kind: str) -> None:
        """Send ``mail`` when the work commits."""
        await self.runtime.mail.add(self.session, mail, kind=kind)


class Service:
    """The base of a service's use cases; ``clock`` is injectable for tests."""

    def __init__(self, runtime: ServiceRuntime, *, clock: Clock = utc_now) -> None:
        self.runtime = runtime
        self.clock = clock

    def now(self) -> datetime:
        return self.clock()

    @contextlib.asynccontextmanager
    async def work(
        self, cause: Envelope[Any] | None = None, *, subject: str | None = None
    ) -> AsyncIterator[Work]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        async with self.runtime.sessions() as session, session.begin():
            yield Work(session, self.runtime, self.now(), cause, subject)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[Work]:
        """A read-only unit of work: nothing it does is committed."""
        async with self.runtime.sessions() as session:
            yield Work(session, self.runtime, self.now())


async def the_service(request: Request) -> Any:
    """The one dependency through which every route gets its service."""
    return request.app.state.service


def create_service_app(
    runtime: ServiceRuntime,
    service: Service | None = None,
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
    app.state.service = service
    for router in routers:
        app.include_router(router)

    add_runtime_routes(app, runtime, readiness_checks=runtime_checks(runtime))
    Auth(settings).install(app)
    install_error_handlers(app)
    guard_requests(app, settings)
    trace_requests(app, settings)
    return app


def trace_requests(app: FastAPI, settings: CommonSettings) -> None:
    """A server span per request, when this process traces (``shared.telemetry``)."""
    if configure_tracing(settings, settings.service_name):
        trace_http(app, settings.service_name)


def guard_requests(app: FastAPI, settings: CommonSettings) -> None:
    """Bodies over the size limit are refused first, then JSON no contract accepts."""
    app.add_middleware(JsonGuard)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)


def runtime_checks(runtime: ServiceRuntime) -> dict[str, ReadinessCheck]:
    """What every runtime needs to be ready: its database and its broker answer."""

    async def broker_ready() -> None:
        if not await runtime.broker.ping(timeout=2.0):
            raise ConnectionError("Kafka broker does not answer")

    return {"database": lambda: ping(runtime.engine), "broker": broker_ready}


def add_runtime_routes(
    app: FastAPI,
    runtime: ServiceRuntime,
    *,
    readiness_checks: dict[str, ReadinessCheck],
    gauges: dict[str, tuple[str, Callable[[], float]]] | None = None,
) -> None:
    """Health, readiness and the metrics every runtime has."""
    relay, epoch, dead_letters = runtime.relay, runtime.epoch, runtime.dead_letters
    add_operational_routes(
        app,
        service=runtime.name,
        readiness_checks=readiness_checks,
        counters={
            "outbox_published_total": (
                "events relayed from the outbox",
                lambda: relay.published_total,
            ),
            "outbox_failed_total": ("outbox sends that failed", lambda: relay.failed_total),
            "broker_epoch_changes_total": (
                "times the broker was found to have forgotten its data",
                lambda: epoch.changes,
            ),
            "outbox_republished_total": (
                "events published again because the broker had forgotten them",
                lambda: epoch.republished_total,
            ),
            "dead_lettered_total": (
                "messages sent to a dead-letter topic",
                lambda: dead_letters.dead_lettered,
            ),
        },
        labelled_counters={
            "dead_letters_total": (
                "messages sent to a dead-letter topic, per topic",
                "topic",
                lambda: dict(dead_letters.by_topic),
            )
        },
        gauges=gauges,
    )
    serve_gauges(app, runtime.gauges)
