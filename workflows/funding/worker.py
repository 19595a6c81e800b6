"""The workflows process: Temporal worker, the Kafka bridge, the officers' lifecycle API
and their attention list.

``create_app(settings)`` composes it on the shared service runtime (its own database for
the outbox the workflow publishes through and for the attention list); nothing connects
until the app's lifespan starts: then the process connects to Temporal (pydantic data
converter), starts the runtime (the bridge's and the attention list's subscribers, the
outbox relay, the broker-epoch watch, the mail relay), and runs the worker for the
exchange-funding workflow until the app stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from fastapi import FastAPI
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from shared.auth import Auth
from shared.clock import Clock, utc_now
from shared.contracts.stages import FINAL_STAGES, Stage
from shared.errors import install_error_handlers
from shared.logging import configure_logging
from shared.mail import Mailer
from shared.messaging.consumers import register_consumers
from shared.service import (
    ServiceRuntime,
    add_runtime_routes,
    build_runtime,
    freeze_startup_heap,
    guard_requests,
    runtime_checks,
    trace_requests,
)
from shared.telemetry.tracing import temporal_interceptors
from workflows.attention.api import router as attention_router
from workflows.attention.consumers import consumers
from workflows.attention.service import AttentionService
from workflows.console.web import router as console_router
from workflows.funding.activities import OutboxActivities
from workflows.funding.api import router as lifecycle_router
from workflows.funding.bridge import Bridge
from workflows.funding.workflow import ExchangeFundingWorkflow
from workflows.persistence import messaging, metadata
from workflows.settings import WorkflowsSettings

logger = logging.getLogger(__name__)

# Bridge consumers in the group: partitions are shared out among them (see bench/lifecycle.py).
BRIDGE_CONSUMERS = 1

DESCRIPTION = (
    "The officers' lifecycle API: decisions that must be checked against an application's "
    "lifecycle, the lifecycle query, the stuck-in-stage search, and the attention list of "
    "what waits for an officer."
)


async def connect_temporal(settings: WorkflowsSettings) -> Client:
    # With tracing on, the client carries the trace into the workflows it starts and
    # signals, and the worker built on it into their activities.
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        interceptors=temporal_interceptors(),
    )


def applications_per_stage(app: FastAPI) -> Callable[[], Awaitable[dict[str, float]]]:
    """Running applications in each stage, from Temporal's visibility (its search attributes)."""

    async def count() -> dict[str, float]:
        client: Client | None = app.state.temporal
        if client is None:
            return {}
        stages = [stage for stage in Stage if stage not in FINAL_STAGES]
        counts = await asyncio.gather(
            *(
                client.count_workflows(
                    "WorkflowType = 'ExchangeFundingWorkflow' AND ExecutionStatus = 'Running' "
                    f"AND GrantflowStage = '{stage.value}'"
                )
                for stage in stages
            )
        )
        return {
            stage.value: float(found.count) for stage, found in zip(stages, counts, strict=True)
        }

    return count


def _log_worker_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the Temporal worker stopped", exc_info=task.exception())


def attention_list(
    runtime: ServiceRuntime,
    settings: WorkflowsSettings,
    *,
    clock: Clock = utc_now,
    mailer: Mailer | None = None,
) -> AttentionService:
    """The officers' attention list on ``runtime``: its consumers and its mail."""
    service = AttentionService(runtime, settings, clock=clock)
    register_consumers(service, consumers(service))
    runtime.send_mail_with(mailer)
    return service


def create_app(
    settings: WorkflowsSettings | None = None,
    *,
    clock: Clock = utc_now,
    mailer: Mailer | None = None,
) -> FastAPI:
    settings = settings or WorkflowsSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    runtime = build_runtime(settings, metadata, messaging)
    attention = attention_list(runtime, settings, clock=clock, mailer=mailer)
    # The bridge keeps its own subscriber: it signals Temporal, it does not change the database.
    bridge = Bridge(settings, consumers=BRIDGE_CONSUMERS)
    bridge.subscribe(runtime.broker)
    activities = OutboxActivities(runtime)
    running: dict[str, asyncio.Task[None]] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = await connect_temporal(settings)
        app.state.temporal = client
        bridge.client = client
        worker = Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=[ExchangeFundingWorkflow],
            activities=[activities.publish],
            graceful_shutdown_timeout=timedelta(seconds=5),
        )
        await runtime.start()
        freeze_startup_heap()
        running["worker"] = asyncio.create_task(worker.run(), name="temporal-worker")
        running["worker"].add_done_callback(_log_worker_end)
        logger.info(
            "workflows process connected to Temporal at %s, task queue %s",
            settings.temporal_address,
            settings.temporal_task_queue,
        )
        try:
            yield
        finally:
            if not running["worker"].done():
                await worker.shutdown()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await running["worker"]
            await runtime.stop()
            app.state.temporal = None

    app = FastAPI(
        title="grantflow workflows", description=DESCRIPTION, version="1.0.0", lifespan=lifespan
    )
    app.state.temporal = None
    app.state.runtime = runtime
    app.state.service = attention
    Auth(settings).install(app)
    install_error_handlers(app)
    app.include_router(lifecycle_router)
    app.include_router(attention_router)
    app.include_router(console_router)  # the officers' pages at /console

    async def temporal_ready() -> None:
        client: Client | None = app.state.temporal
        if client is None:
            raise ConnectionError("not connected to Temporal yet")
        await client.service_client.check_health(timeout=timedelta(seconds=2))

    async def worker_ready() -> None:
        task = running.get("worker")
        if task is None or task.done():
            raise RuntimeError("the Temporal worker is not running")

    add_runtime_routes(
        app,
        runtime,
        readiness_checks={
            "temporal": temporal_ready,
            "worker": worker_ready,
            **runtime_checks(runtime),
        },
    )
    runtime.gauges.add_labelled(
        "applications_in_stage",
        "running applications in each stage (the same in every replica: take one, or max)",
        "stage",
        applications_per_stage(app),
    )
    guard_requests(app, settings)
    trace_requests(app, settings)
    return app
