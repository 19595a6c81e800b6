"""The workflows process: Temporal worker, the Kafka bridge and the officers' lifecycle API.

The exchange-funding workflow, its activities and the bridge subscribers are registered
here as they are built; until then the process connects to Temporal and Kafka and serves
its health endpoints, so the embedded stack can supervise it like any other service.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from shared.http import add_operational_routes
from shared.logging import configure_logging
from shared.messaging.broker import create_broker
from shared.settings import WorkflowsSettings

logger = logging.getLogger(__name__)

TASK_QUEUE = "exchange-funding"

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


def create_app(settings: WorkflowsSettings | None = None) -> FastAPI:
    settings = settings or WorkflowsSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    broker, _dead_letters = create_broker(settings, client_id="grantflow-workflows")
    temporal: dict[str, Client] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        temporal["client"] = await connect_temporal(settings)
        await broker.start()
        logger.info("workflows process connected to Temporal at %s", settings.temporal_address)
        try:
            yield
        finally:
            await broker.stop()

    app = FastAPI(
        title="grantflow workflows", description=DESCRIPTION, version="1.0.0", lifespan=lifespan
    )

    async def temporal_ready() -> None:
        client = temporal.get("client")
        if client is None:
            raise ConnectionError("not connected to Temporal yet")
        await client.service_client.check_health(timeout=timedelta(seconds=2))

    async def broker_ready() -> None:
        if not await broker.ping(timeout=2.0):
            raise ConnectionError("Kafka broker does not answer")

    add_operational_routes(
        app,
        service=settings.service_name,
        readiness_checks={"temporal": temporal_ready, "broker": broker_ready},
    )
    return app
