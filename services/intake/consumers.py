"""Kafka subscribers of the intake service: each parses, then runs one use case once.

The inbox stores the event id in the same transaction as the change, so a redelivered
event changes nothing; the shared middleware acknowledges and dead-letters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import service
from services.intake.service import Intake
from shared.contracts.envelope import Envelope
from shared.contracts.topics import (
    APPLICATION_STATUS_CHANGED,
    MEMBER_STANDING_CHANGED,
    REMINDER_DUE,
    REQUEST_PARTNER_CONFIRMATION,
    Topic,
)
from shared.logging import log_context
from shared.messaging.broker import EventHandler, subscribe_by_topic
from shared.service import ServiceRuntime

UseCase = Callable[[AsyncSession, Intake, Any], Awaitable[None]]


def register_consumers(
    runtime: ServiceRuntime, intake: Intake, fetch_max_wait_ms: int | None = None
) -> None:
    settings = runtime.settings
    if fetch_max_wait_ms is not None:
        settings = settings.model_copy(update={"kafka_fetch_max_wait_ms": fetch_max_wait_ms})

    async def handle(name: str, topic: Topic, event: Envelope[Any], use_case: UseCase) -> None:
        async def change(session: AsyncSession) -> None:
            await use_case(session, intake, event)

        with log_context(application_id=event.application_id, correlation_id=event.correlation_id):
            await runtime.inbox(name).process(event, topic.name, change)

    def use(name: str, topic: Topic, use_case: UseCase) -> EventHandler:
        async def handler(event: Envelope[Any]) -> None:
            await handle(name, topic, event, use_case)

        return handler

    # One consumer for every topic: each extra consumer would join the group once more, and
    # on Tansu every join costs half a session timeout.
    subscribe_by_topic(
        runtime.broker,
        settings,
        {
            APPLICATION_STATUS_CHANGED: use(
                "on_status_changed", APPLICATION_STATUS_CHANGED, service.apply_status_change
            ),
            REMINDER_DUE: use("on_reminder_due", REMINDER_DUE, service.remind),
            MEMBER_STANDING_CHANGED: use(
                "on_member_standing_changed",
                MEMBER_STANDING_CHANGED,
                service.apply_member_standing,
            ),
            REQUEST_PARTNER_CONFIRMATION: use(
                "on_partner_confirmation_requested",
                REQUEST_PARTNER_CONFIRMATION,
                service.request_partner_confirmation,
            ),
        },
        group_id=settings.consumer_group,
    )
