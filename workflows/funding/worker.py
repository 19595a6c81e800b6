"""The workflows process: Temporal worker, the Kafka bridge and the officers' lifecycle API.

``create_app(settings)`` composes it on the shared service runtime (its own database for
the outbox the workflow publishes through); nothing connects until the app's lifespan
starts: then the process connects to Temporal (pydantic data converter), starts the
runtime (the bridge's subscribers, the outbox relay, the broker-epoch watch), and runs the
worker for the exchange-funding workflow until the app stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from shared.auth import Auth
from shared.db import ping
from shared.errors import install_error_handlers
from shared.http import BodySizeLimit
from shared.logging import configure_logging
from shared.service import add_runtime_routes, build_runtime
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
    "lifecycle, the lifecycle query and the stuck-in-stage search."
)


async def connect_temporal(settings: WorkflowsSettings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


def _log_worker_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the Temporal worker stopped", exc_info=task.exception())


def create_app(settings: WorkflowsSettings | None = None) -> FastAPI:
    settings = settings or WorkflowsSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    runtime = build_runtime(settings, metadata, messaging)
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
    Auth(settings).install(app)
    install_error_handlers(app)
    app.include_router(lifecycle_router)

    async def temporal_ready() -> None:
        client: Client | None = app.state.temporal
        if client is None:
            raise ConnectionError("not connected to Temporal yet")
        await client.service_client.check_health(timeout=timedelta(seconds=2))

    async def worker_ready() -> None:
        task = running.get("worker")
        if task is None or task.done():
            raise RuntimeError("the Temporal worker is not running")

    async def broker_ready() -> None:
        if not await runtime.broker.ping(timeout=2.0):
            raise ConnectionError("Kafka broker does not answer")

    add_runtime_routes(
        app,
        runtime,
        readiness_checks={
            "temporal": temporal_ready,
            "worker": worker_ready,
            "database": lambda: ping(runtime.engine),
            "broker": broker_ready,
        },
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
