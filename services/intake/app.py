"""The intake service: member cities apply for exchange funding."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.intake import api, portal
from services.intake.catalog import load_catalog
from services.intake.consumers import consumers
from services.intake.persistence import messaging, metadata
from services.intake.seed import seed_demo_data
from services.intake.service import IntakeService
from services.intake.settings import IntakeSettings
from shared.clock import Clock, utc_now
from shared.mail import Mailer
from shared.messaging.consumers import register_consumers
from shared.service import Job, build_runtime, create_service_app

DESCRIPTION = "Member cities apply for exchange funding: program catalog, members, applications."
logger = logging.getLogger(__name__)


def announce_open_cycles(service: IntakeService, interval: float) -> Job:
    """A loop that tells disbursement when a program cycle opens (at start, then daily)."""

    async def announce() -> None:
        while True:
            try:
                async with service.work() as work:
                    opened = await service.announce_open_cycles(work)
                if opened:
                    logger.info("program cycles opened: %s", ", ".join(opened))
            except Exception:  # the database may be away for a moment: try again later
                logger.exception("announcing the open program cycles failed")
            await asyncio.sleep(interval)

    return announce


def create_app(
    settings: IntakeSettings | None = None,
    *,
    clock: Clock = utc_now,
    mailer: Mailer | None = None,
) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = build_runtime(settings, metadata, messaging)
    service = IntakeService(
        runtime,
        catalog=load_catalog(settings.catalog),
        link_secret=settings.link_secret.get_secret_value(),
        public_url=settings.base_url,
        clock=clock,
    )
    register_consumers(
        service, consumers(service), fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms
    )
    runtime.send_mail_with(mailer, poll_interval=settings.mail_poll_interval_ms / 1000)
    runtime.add_job(announce_open_cycles(service, settings.cycle_check_interval_seconds))
    app = create_service_app(
        runtime,
        service,
        title="grantflow intake",
        description=DESCRIPTION,
        routers=[api.router, portal.router],
    )
    if settings.seeds_demo_data:
        serve = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan_with_demo_data(app: FastAPI) -> AsyncIterator[None]:
            async with serve(app):
                await seed_demo_data(service)
                yield

        app.router.lifespan_context = lifespan_with_demo_data
    return app
