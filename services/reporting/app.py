"""The reporting service: post-exchange reports, standing and program analytics."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting import api, dashboard
from services.reporting.consumers import subscribe
from services.reporting.demo import seed_demo
from services.reporting.persistence import messaging, metadata
from services.reporting.service import ReportingService
from services.reporting.settings import ReportingSettings
from shared.auth import Auth
from shared.service import build_runtime, create_service_app

logger = logging.getLogger(__name__)

DESCRIPTION = "Post-exchange reports, member standing and program analytics."


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    runtime = build_runtime(settings, metadata, messaging)
    service = ReportingService(runtime.sessions, runtime.outbox, runtime.inbox)
    subscribe(runtime, service)
    app = create_service_app(
        runtime,
        title="grantflow reporting",
        description=DESCRIPTION,
        routers=[api.router, dashboard.router],
    )
    app.state.reporting = service
    if settings.environment == "development":
        _seed_demo_data_at_start(app, runtime.sessions)
    Auth(settings).install(app)
    api.install_error_handlers(app)
    return app


def _seed_demo_data_at_start(app: FastAPI, sessions: async_sessionmaker[AsyncSession]) -> None:
    """Seed before serving (a background job could be cancelled mid-write by a quick stop)."""
    serve = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with serve(app) as state:
            try:
                await seed_demo(sessions)
            except Exception:  # demo data must never stop the service
                logger.exception("could not seed the demo report")
            yield state

    app.router.lifespan_context = lifespan
