"""Kafka subscribers of the review service: the workflow's review commands, and reports.

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
from shared.contracts.topics import (
    REASSIGN_REVIEW,
    REPORT_SUBMITTED,
    REQUEST_REPORT_REVIEW,
    REQUEST_REVIEWS,
    Topic,
)
from shared.logging import log_context
from shared.messaging.broker import EventHandler, subscribe_by_topic
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

    def use(name: str, topic: Topic, use_case: UseCase) -> EventHandler:
        async def handler(event: Envelope[Any]) -> None:
            await handle(name, topic.qualified(settings.topic_prefix), event, use_case)

        return handler

    # One consumer for the three commands and the reports they review: each extra consumer
    # would join the group once more, and on Tansu every join costs half a session timeout.
    subscribe_by_topic(
        runtime.broker,
        settings,
        {
            REQUEST_REVIEWS: use("on_review_requested", REQUEST_REVIEWS, service.request_reviews),
            REASSIGN_REVIEW: use("on_review_reassign", REASSIGN_REVIEW, service.reassign_late),
            REQUEST_REPORT_REVIEW: use(
                "on_report_review_requested", REQUEST_REPORT_REVIEW, service.request_report_review
            ),
            REPORT_SUBMITTED: use("on_report_submitted", REPORT_SUBMITTED, service.record_report),
        },
        group_id=group,
    )
