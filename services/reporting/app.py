"""The reporting service: post-exchange reports, standing and program analytics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.reporting import api, dashboard
from services.reporting.consumers import consumers
from services.reporting.demo import seed_demo
from services.reporting.persistence import messaging, metadata
from services.reporting.service import ReportingService
from services.reporting.settings import ReportingSettings
from shared.clock import Clock, utc_now
from shared.mail import Mailer
from shared.messaging.consumers import register_consumers
from shared.service import build_runtime, create_service_app

logger = logging.getLogger(__name__)

DESCRIPTION = "Post-exchange reports, member standing and program analytics."


def create_app(
    settings: ReportingSettings | None = None,
    *,
    clock: Clock = utc_now,
    mailer: Mailer | None = None,
) -> FastAPI:
    """The service's app; ``mailer`` is taken as every service's is, but reporting sends none."""
    settings = settings or ReportingSettings()
    runtime = build_runtime(settings, metadata, messaging)
    service = ReportingService(runtime, clock=clock)
    register_consumers(service, consumers(service))
    app = create_service_app(
        runtime,
        service,
        title="grantflow reporting",
        description=DESCRIPTION,
        routers=[api.router, dashboard.router],
    )
    if settings.environment == "development":
        _seed_demo_data_at_start(app, service)
    return app


def _seed_demo_data_at_start(app: FastAPI, service: ReportingService) -> None:
    """Seed before serving (a background job could be cancelled mid-write by a quick stop)."""
    serve = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with serve(app) as state:
            try:
                async with service.work() as work:
                    await seed_demo(work)
            except Exception:  # demo data must never stop the service
                logger.exception("could not seed the demo report")
            yield state

    app.router.lifespan_context = lifespan
