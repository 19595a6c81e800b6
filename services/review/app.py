"""The review service: reviewers work a queue of review tasks."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from fastapi import FastAPI

from services.review.api import officer_router, reviewer_router
from services.review.consumers import consumers
from services.review.persistence import messaging, metadata
from services.review.service import ReviewService
from services.review.settings import ReviewSettings
from services.review.web import router as inbox_router
from shared.clock import Clock, utc_now
from shared.mail import Mailer
from shared.messaging.consumers import register_consumers
from shared.service import Job, build_runtime, create_service_app

logger = logging.getLogger(__name__)

DESCRIPTION: Final = (
    "Reviewers work a queue of review tasks: assignment, scores, recusals. "
    "Reviewers use `/v1/tasks` (or the HTML inbox at `/inbox`); program officers manage "
    "reviewers, move tasks and compare scores under `/v1/reviewers` and `/v1/officer`. "
    "A task reassigned after its deadline can no longer be submitted by the late reviewer: "
    "its submission is answered 409."
)


def create_app(
    settings: ReviewSettings | None = None,
    *,
    clock: Clock = utc_now,
    mailer: Mailer | None = None,
) -> FastAPI:
    settings = settings or ReviewSettings()
    runtime = build_runtime(settings, metadata, messaging)
    review = ReviewService(runtime, clock=clock)
    register_consumers(review, consumers(review))
    interval = settings.reminder_interval_ms / 1000
    if settings.environment == "development":
        runtime.add_job(_seed_demo_reviewers(review))
    runtime.add_job(_remind(review, interval))
    runtime.send_mail_with(mailer, poll_interval=interval)
    return create_service_app(
        runtime,
        review,
        title="grantflow review",
        description=DESCRIPTION,
        routers=[reviewer_router, officer_router, inbox_router],
    )


def _seed_demo_reviewers(review: ReviewService) -> Job:
    async def seed_demo_reviewers() -> None:
        try:
            async with review.work() as work:
                added = await review.seed_demo_reviewers(work)
        except Exception:  # e.g. tables not migrated yet: the service still serves
            logger.exception("could not seed the demo reviewers")
            return
        if added:
            logger.info("seeded %s demo reviewers", added)

    return seed_demo_reviewers


def _remind(review: ReviewService, interval: float) -> Job:
    async def remind_reviewers() -> None:
        while True:
            try:
                async with review.work() as work:
                    await review.remind_due(work)
            except Exception:  # the database may be away for a moment: try again later
                logger.exception("reminder round failed")
            await asyncio.sleep(interval)

    return remind_reviewers
