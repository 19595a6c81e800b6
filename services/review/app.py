"""The review service: reviewers work a queue of review tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Final

from fastapi import FastAPI

from services.review import service
from services.review.api import (
    install_error_handlers,
    officer_router,
    reviewer_router,
    system_clock,
)
from services.review.consumers import register_consumers
from services.review.persistence import messaging, metadata
from services.review.settings import ReviewSettings
from services.review.web import router as inbox_router
from shared.auth import Auth
from shared.db import unit_of_work
from shared.mail import Mailer, create_mailer
from shared.service import ServiceRuntime, build_runtime, create_service_app

logger = logging.getLogger(__name__)

DESCRIPTION = (
    "Reviewers work a queue of review tasks: assignment, scores, recusals. "
    "Reviewers use `/v1/tasks` (or the HTML inbox at `/inbox`); program officers manage "
    "reviewers, move tasks and compare scores under `/v1/reviewers` and `/v1/officer`. "
    "A task reassigned after its deadline can no longer be submitted by the late reviewer: "
    "its submission is answered 409."
)
# How often queued mail is sent and due reminders are looked for.
MAIL_INTERVAL: Final = 1.0


def create_app(
    settings: ReviewSettings | None = None,
    *,
    clock: Callable[[], datetime] = system_clock,
    mailer: Mailer | None = None,
) -> FastAPI:
    settings = settings or ReviewSettings()
    runtime = build_runtime(settings, metadata, messaging)
    register_consumers(runtime, clock)
    app = create_service_app(
        runtime,
        title="grantflow review",
        description=DESCRIPTION,
        routers=[reviewer_router, officer_router, inbox_router],
    )
    app.state.clock = clock
    Auth(settings).install(app)
    install_error_handlers(app)
    if settings.environment == "development":
        runtime.add_job(_seed_demo_reviewers(runtime, clock))
    runtime.add_job(_mail_and_reminders(runtime, mailer or create_mailer(settings), clock))
    return app


def _seed_demo_reviewers(
    runtime: ServiceRuntime, clock: Callable[[], datetime]
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def seed_demo_reviewers() -> None:
        try:
            async with unit_of_work(runtime.sessions) as session:
                added = await service.seed_demo_reviewers(session, clock())
        except Exception:  # e.g. tables not migrated yet: the service still serves
            logger.exception("could not seed the demo reviewers")
            return
        if added:
            logger.info("seeded %s demo reviewers", added)

    return seed_demo_reviewers


def _mail_and_reminders(
    runtime: ServiceRuntime, mailer: Mailer, clock: Callable[[], datetime]
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def mail_and_reminders() -> None:
        while True:
            try:
                async with unit_of_work(runtime.sessions) as session:
                    await service.remind_due(session, clock())
                await service.deliver_mail(runtime.sessions, mailer, clock())
            except Exception:  # the database may be away for a moment: try again later
                logger.exception("mail and reminders round failed")
            await asyncio.sleep(MAIL_INTERVAL)

    return mail_and_reminders
