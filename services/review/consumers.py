"""Kafka subscribers of the review service: the workflow's review commands.

Thin: each handler runs one use case through the inbox, so a redelivered message (same
event id) changes nothing; the use cases also recognise a re-sent command (same
``command_id``, or the same application and round) and create no second set of tasks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.review import service
from shared.contracts.envelope import Envelope
from shared.contracts.topics import REPORT_REVIEW_REQUESTED, REVIEW_REASSIGN, REVIEW_REQUESTED
from shared.contracts.workflows import ReassignReview, RequestReportReview, RequestReviews
from shared.logging import log_context
from shared.messaging.broker import subscriber
from shared.messaging.outbox import Outbox
from shared.service import ServiceRuntime

UseCase = Callable[[AsyncSession, Outbox, Any, str, datetime], Awaitable[None]]


def register_consumers(runtime: ServiceRuntime, clock: Callable[[], datetime]) -> None:
    settings = runtime.settings
    group = settings.consumer_group

    async def handle(name: str, topic: str, event: Envelope[Any], use_case: UseCase) -> None:
        async def change(session: AsyncSession) -> None:
            await use_case(session, runtime.outbox, event, topic, clock())

        with log_context(application_id=event.application_id, correlation_id=event.correlation_id):
            await runtime.inbox(name).process(event, topic, change)

    @subscriber(runtime.broker, settings, REVIEW_REQUESTED, group_id=f"{group}.requested")
    async def on_review_requested(event: Envelope[RequestReviews]) -> None:
        await handle(
            "on_review_requested",
            REVIEW_REQUESTED.qualified(settings.topic_prefix),
            event,
            service.request_reviews,
        )

    @subscriber(runtime.broker, settings, REVIEW_REASSIGN, group_id=f"{group}.reassign")
    async def on_review_reassign(event: Envelope[ReassignReview]) -> None:
        await handle(
            "on_review_reassign",
            REVIEW_REASSIGN.qualified(settings.topic_prefix),
            event,
            service.reassign_late,
        )

    @subscriber(runtime.broker, settings, REPORT_REVIEW_REQUESTED, group_id=f"{group}.report")
    async def on_report_review_requested(event: Envelope[RequestReportReview]) -> None:
        await handle(
            "on_report_review_requested",
            REPORT_REVIEW_REQUESTED.qualified(settings.topic_prefix),
            event,
            service.request_report_review,
        )
