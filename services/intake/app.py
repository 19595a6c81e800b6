"""The intake service: member cities apply for exchange funding."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from services.intake import api
from services.intake.catalog import load_catalog
from services.intake.consumers import register_consumers
from services.intake.notifications import NotificationRelay
from services.intake.persistence import messaging, metadata
from services.intake.seed import seed_demo_data
from services.intake.service import Clock, Intake
from services.intake.settings import IntakeOptions, IntakeSettings
from shared.auth import Auth
from shared.mail import Mailer, create_mailer
from shared.service import build_runtime, create_service_app

DESCRIPTION = "Member cities apply for exchange funding: program catalog, members, applications."


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: IntakeSettings | None = None,
    *,
    options: IntakeOptions | None = None,
    clock: Clock = _utc_now,
    mailer: Mailer | None = None,
) -> FastAPI:
    settings = settings or IntakeSettings()
    options = options or IntakeOptions()
    runtime = build_runtime(settings, metadata, messaging)
    relay = NotificationRelay(
        runtime.sessions,
        mailer or create_mailer(settings),
        poll_interval=options.mail_poll_interval_ms / 1000,
    )
    intake = Intake(
        catalog=load_catalog(options.catalog),
        sessions=runtime.sessions,
        outbox=runtime.outbox,
        link_secret=settings.jwt_secret.get_secret_value(),
        public_url=options.base_url(settings),
        clock=clock,
    )
    register_consumers(runtime, intake, options.consumer_fetch_max_wait_ms)
    runtime.add_job(relay.run)
    app = create_service_app(
        runtime, title="grantflow intake", description=DESCRIPTION, routers=[api.router]
    )
    app.state.intake = intake
    Auth(settings).install(app)
    api.install_error_handlers(app)

    if options.seeds(settings):
        service_lifespan = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan_with_demo_data(app: FastAPI) -> AsyncIterator[None]:
            async with service_lifespan(app):
                await seed_demo_data(runtime.sessions, clock())
                yield

        app.router.lifespan_context = lifespan_with_demo_data
    return app
