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
from shared.contracts.reporting import MemberStandingChanged
from shared.contracts.topics import (
    APPLICATION_STATUS_CHANGED,
    MEMBER_STANDING_CHANGED,
    PARTNER_CONFIRMATION_REQUESTED,
    REMINDER_DUE,
    Topic,
)
from shared.contracts.workflows import (
    ApplicationStatusChanged,
    ReminderDue,
    RequestPartnerConfirmation,
)
from shared.logging import log_context
from shared.messaging.broker import subscriber
from shared.service import ServiceRuntime

UseCase = Callable[[AsyncSession, Intake, Any], Awaitable[None]]


def register_consumers(
    runtime: ServiceRuntime, intake: Intake, fetch_max_wait_ms: int | None = None
) -> None:
    settings = runtime.settings
    if fetch_max_wait_ms is not None:
        settings = settings.model_copy(update={"kafka_fetch_max_wait_ms": fetch_max_wait_ms})

    def group(handler: str) -> str:
        # One group per handler: consumers of different topics never make each other
        # rebalance (on Tansu every join costs half a session timeout).
        return f"{settings.consumer_group}.{handler}"

    async def handle(name: str, topic: Topic, event: Envelope[Any], use_case: UseCase) -> None:
        async def change(session: AsyncSession) -> None:
            await use_case(session, intake, event)

        with log_context(application_id=event.application_id, correlation_id=event.correlation_id):
            await runtime.inbox(name).process(event, topic.name, change)

    @subscriber(
        runtime.broker, settings, APPLICATION_STATUS_CHANGED, group_id=group("on_status_changed")
    )
    async def on_status_changed(event: Envelope[ApplicationStatusChanged]) -> None:
        await handle(
            "on_status_changed", APPLICATION_STATUS_CHANGED, event, service.apply_status_change
        )

    @subscriber(runtime.broker, settings, REMINDER_DUE, group_id=group("on_reminder_due"))
    async def on_reminder_due(event: Envelope[ReminderDue]) -> None:
        await handle("on_reminder_due", REMINDER_DUE, event, service.remind)

    @subscriber(
        runtime.broker,
        settings,
        MEMBER_STANDING_CHANGED,
        group_id=group("on_member_standing_changed"),
    )
    async def on_member_standing_changed(event: Envelope[MemberStandingChanged]) -> None:
        await handle(
            "on_member_standing_changed",
            MEMBER_STANDING_CHANGED,
            event,
            service.apply_member_standing,
        )

    @subscriber(
        runtime.broker,
        settings,
        PARTNER_CONFIRMATION_REQUESTED,
        group_id=group("on_partner_confirmation_requested"),
    )
    async def on_partner_confirmation_requested(
        event: Envelope[RequestPartnerConfirmation],
    ) -> None:
        await handle(
            "on_partner_confirmation_requested",
            PARTNER_CONFIRMATION_REQUESTED,
            event,
            service.request_partner_confirmation,
        )
