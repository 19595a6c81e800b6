"""The service's inputs besides HTTP: Kafka subscribers and the settlement-deadline clock.

All seven input topics are read by one consumer in one group. Separate subscribers join
their groups one after another (each start waits for its partition assignment), and a
group join takes half the session timeout on Tansu: seven subscribers made the service
take seven seconds to start with the test settings and over twenty with the defaults.
One consumer joins once. Acknowledgement and dead letters are the shared middleware's,
exactly as for ``shared.messaging.broker.subscriber``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.disbursement.domain import Disposition, InvalidCommandError
from services.disbursement.service import Disbursement
from shared.contracts.envelope import Envelope
from shared.contracts.topics import (
    ADJUST_AWARD,
    PAY_TRANCHE,
    PAYMENT_FAILED,
    PAYMENT_SETTLED,
    RELEASE_FUNDS,
    REQUEST_REFUND,
    RESERVE_FUNDS,
    Topic,
)
from shared.db import unit_of_work
from shared.messaging.broker import EventHandler, subscribe_by_topic
from shared.messaging.deadletter import PoisonMessage
from shared.service import ServiceRuntime

logger = logging.getLogger(__name__)

UseCase = Callable[[AsyncSession, Envelope[Any]], Awaitable[None]]


@dataclass(frozen=True)
class Input:
    topic: Topic
    handler: str


COMMANDS = (
    Input(RESERVE_FUNDS, "on_reserve_funds"),
    Input(RELEASE_FUNDS, "on_release_funds"),
    Input(PAY_TRANCHE, "on_pay_tranche"),
    Input(REQUEST_REFUND, "on_request_refund"),
    Input(ADJUST_AWARD, "on_adjust_award"),
)
FINANCE = (
    Input(PAYMENT_SETTLED, "on_payment_settled"),
    Input(PAYMENT_FAILED, "on_payment_failed"),
)


def register_consumers(runtime: ServiceRuntime, disbursement: Disbursement) -> None:
    use_cases: dict[str, UseCase] = {
        RESERVE_FUNDS.name: disbursement.reserve,
        RELEASE_FUNDS.name: disbursement.release,
        PAY_TRANCHE.name: disbursement.pay,
        REQUEST_REFUND.name: disbursement.refund,
        ADJUST_AWARD.name: disbursement.adjust,
    }

    async def command(item: Input, event: Envelope[Any]) -> None:
        use_case = use_cases[item.topic.name]

        async def change(session: AsyncSession) -> None:
            await use_case(session, event)

        try:
            await runtime.inbox(item.handler).process(event, item.topic.name, change)
        except InvalidCommandError as error:
            raise PoisonMessage(str(error)) from error

    async def settlement(item: Input, event: Envelope[Any]) -> None:
        outcome: list[Disposition] = []

        async def change(session: AsyncSession) -> None:
            outcome.append(
                await disbursement.record_settlement(
                    session,
                    event.payload,
                    channel="kafka",
                    event_id=str(event.event_id),
                    cause=event,
                )
            )

        processed = await runtime.inbox(item.handler).process(event, item.topic.name, change)
        if processed:
            unknown = outcome == [Disposition.UNKNOWN]
        else:  # redelivered: it was recorded the first time; dead-letter it again if unknown
            async with runtime.sessions() as session:
                unknown = await disbursement.is_unknown_settlement(session, str(event.event_id))
        if unknown:
            # Recorded for reconciliation, and dead-lettered so that operators see it.
            raise PoisonMessage(f"no payment instruction {event.payload.instruction_id}")

    handlers: dict[Topic, EventHandler] = {
        **{item.topic: functools.partial(command, item) for item in COMMANDS},
        **{item.topic: functools.partial(settlement, item) for item in FINANCE},
    }
    subscribe_by_topic(
        runtime.broker, runtime.settings, handlers, group_id=runtime.settings.consumer_group
    )


def settlement_deadline_job(
    runtime: ServiceRuntime, disbursement: Disbursement
) -> Callable[[], Coroutine[Any, Any, None]]:
    """A loop that re-sends unsettled instructions past their deadline and escalates."""
    interval = disbursement.options.deadline_scan_interval_seconds

    async def resend_unsettled_instructions() -> None:
        while True:
            try:
                while True:
                    async with unit_of_work(runtime.sessions) as session:
                        handled = await disbursement.resend_overdue(session, limit=100)
                    if handled < 100:
                        break
            except Exception:  # the database may be away for a while: try again later
                logger.exception("settlement deadline scan failed")
            await asyncio.sleep(interval)

    return resend_unsettled_instructions
