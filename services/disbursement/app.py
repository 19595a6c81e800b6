"""The disbursement service: budgets, tranches and the finance systems."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError

from services.disbursement.api import router
from services.disbursement.consumers import consumers
from services.disbursement.jobs import settlement_deadline
from services.disbursement.persistence import messaging, metadata
from services.disbursement.service import DisbursementService
from services.disbursement.settings import DisbursementSettings
from shared.clock import Clock, utc_now
from shared.messaging.consumers import register_consumers
from shared.service import build_runtime, create_service_app

DESCRIPTION = "Budgets, reservations, tranches and the finance systems."

logger = logging.getLogger(__name__)


def create_app(settings: DisbursementSettings | None = None, *, clock: Clock = utc_now) -> FastAPI:
    settings = settings or DisbursementSettings()
    runtime = build_runtime(settings, metadata, messaging)
    service = DisbursementService(runtime, settings, clock=clock)
    register_consumers(service, consumers(service))
    runtime.add_job(settlement_deadline(service))
    app = create_service_app(
        runtime,
        service,
        title="grantflow disbursement",
        description=DESCRIPTION,
        routers=[router],
    )
    if settings.seed_demo_budgets and settings.environment != "production":
        _seed_demo_budgets_first(app, service)
    return app


def _seed_demo_budgets_first(app: FastAPI, service: DisbursementService) -> None:
    """Budgets exist before the first funding command is consumed."""
    serve = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def seed_then_serve(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with service.work() as work:
                created = await service.seed_demo_budgets(work)
        except IntegrityError:  # another replica seeded them at the same moment
            created = []
        if created:
            logger.info("demo budgets created for %s", ", ".join(created))
        async with serve(app):
            yield

    app.router.lifespan_context = seed_then_serve
