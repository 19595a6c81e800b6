"""The disbursement service: budgets, tranches and the finance systems."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError

from services.disbursement.api import build_router
from services.disbursement.consumers import register_consumers, settlement_deadline_job
from services.disbursement.persistence import messaging, metadata
from services.disbursement.service import Clock, Disbursement, utc_now
from services.disbursement.settings import DisbursementOptions, DisbursementSettings
from shared.auth import Auth
from shared.db import unit_of_work
from shared.service import build_runtime, create_service_app

DESCRIPTION = "Budgets, reservations, tranches and the finance systems."

logger = logging.getLogger(__name__)


def create_app(
    settings: DisbursementSettings | None = None,
    *,
    options: DisbursementOptions | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    settings = settings or DisbursementSettings()
    options = options or DisbursementOptions()
    runtime = build_runtime(settings, metadata, messaging)
    disbursement = Disbursement(runtime.outbox, options, clock=clock)
    register_consumers(runtime, disbursement)
    runtime.add_job(settlement_deadline_job(runtime, disbursement))
    router = build_router(
        disbursement,
        runtime.sessions,
        webhook_secret=settings.finance_webhook_secret.get_secret_value(),
    )
    app = create_service_app(
        runtime, title="grantflow disbursement", description=DESCRIPTION, routers=[router]
    )
    Auth(settings).install(app)
    app.state.disbursement = disbursement

    if options.seed_demo_budgets and settings.environment != "production":
        serve = app.router.lifespan_context

        # Budgets exist before the first funding command is consumed.
        @contextlib.asynccontextmanager
        async def seed_then_serve(app: FastAPI) -> AsyncIterator[None]:
            try:
                async with unit_of_work(runtime.sessions) as session:
                    created = await disbursement.seed_demo_budgets(session)
            except IntegrityError:  # another replica seeded them at the same moment
                created = []
            if created:
                logger.info("demo budgets created for %s", ", ".join(created))
            async with serve(app):
                yield

        app.router.lifespan_context = seed_then_serve
    return app
