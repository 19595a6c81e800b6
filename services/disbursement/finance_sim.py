"""A stand-in finance system: it pays instructions after a delay, and sometimes does not.

It speaks only the public finance topics (``finance.payment.instructed.v1`` in,
``finance.payment.settled.v1`` / ``finance.payment.failed.v1`` out), so a real finance
system can take its place. Like a real one it is idempotent by instruction id: an
instruction sent again after it was paid gets the same settlement again; and one send
delivered twice (same event id) is answered once. It keeps no database; what it paid is
forgotten when it stops.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from typing import Any

from shared.contracts.envelope import Envelope, new_envelope
from shared.contracts.finance import PaymentFailed, PaymentInstructed, PaymentSettled
from shared.contracts.topics import PAYMENT_FAILED, PAYMENT_INSTRUCTED, PAYMENT_SETTLED
from shared.messaging.broker import create_broker, kafka_publisher, subscriber
from shared.messaging.outbox import message_headers
from shared.settings import CommonSettings

PRODUCER = "finance"
FAILURE_REASON = "simulated: the payee's bank rejected the transfer"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Answer:
    notice: PaymentSettled | PaymentFailed
    copies: int


class _Finance:
    """The simulator's decisions, made in the order instructions arrive (seeded)."""

    def __init__(
        self,
        failure_rate: float,
        duplicate_rate: float,
        seed: int | None,
        fail_first_sends: int = 0,
    ) -> None:
        if not 0 <= failure_rate <= 1 or not 0 <= duplicate_rate <= 1:
            raise ValueError("failure and duplicate rates are between 0 and 1")
        if fail_first_sends < 0:
            raise ValueError("the sends to fail first cannot be negative")
        self.failure_rate = failure_rate
        self.duplicate_rate = duplicate_rate
        self.fail_first_sends = fail_first_sends
        self.random = random.Random(seed)
        self.paid: dict[str, PaymentSettled] = {}
        self.sends: dict[str, int] = {}

    def answer(self, instruction: PaymentInstructed) -> _Answer:
        known = self.paid.get(instruction.instruction_id)
        if known is not None:
            return _Answer(known, 1)
        sends = self.sends[instruction.instruction_id] = (
            self.sends.get(instruction.instruction_id, 0) + 1
        )
        if sends <= self.fail_first_sends or self.random.random() < self.failure_rate:
            return _Answer(
                PaymentFailed(instruction_id=instruction.instruction_id, reason=FAILURE_REASON), 1
            )
        settled = PaymentSettled(
            instruction_id=instruction.instruction_id,
            finance_reference=f"SIM-{self.random.getrandbits(48):012x}",
            amount=instruction.amount,
        )
        self.paid[instruction.instruction_id] = settled
        copies = 2 if self.random.random() < self.duplicate_rate else 1
        return _Answer(settled, copies)


async def run_finance_sim(
    settings: CommonSettings,
    *,
    delay_seconds: float,
    failure_rate: float,
    duplicate_rate: float,
    seed: int | None,
    fail_first_sends: int = 0,
    stop: asyncio.Event | None = None,
) -> None:
    """Answer payment instructions until ``stop`` is set (or forever).

    ``failure_rate``: share of instructions refused; ``duplicate_rate``: share of
    settlements delivered twice (as a finance system retrying its delivery would);
    ``fail_first_sends``: every instruction is refused this many times before the rates
    decide (a payee's bank that rejects the first transfers).
    """
    finance = _Finance(failure_rate, duplicate_rate, seed, fail_first_sends)
    broker, _dead_letters = create_broker(settings, client_id="grantflow-finance-sim")
    publish = kafka_publisher(broker)
    in_flight: set[asyncio.Task[None]] = set()
    delivered: set[uuid.UUID] = set()

    async def deliver(cause: Envelope[Any], answer: _Answer) -> None:
        await asyncio.sleep(delay_seconds)
        topic = PAYMENT_SETTLED if isinstance(answer.notice, PaymentSettled) else PAYMENT_FAILED
        for _ in range(answer.copies):
            envelope = new_envelope(
                answer.notice,
                producer=PRODUCER,
                application_id=cause.application_id,
                causation=cause,
            )
            try:
                await publish(
                    topic=topic.qualified(settings.topic_prefix),
                    key=envelope.application_id,
                    body=envelope.model_dump_json().encode(),
                    headers=message_headers(envelope),
                )
            except Exception:  # the instruction will be sent again after its deadline
                logger.exception("finance simulator could not answer %s", answer.notice)
                return
        logger.info(
            "finance simulator answered %s: %s",
            answer.notice.instruction_id,
            topic.name,
        )

    @subscriber(
        broker,
        settings,
        PAYMENT_INSTRUCTED,
        group_id=f"{settings.topic_prefix}grantflow-finance-sim",
    )
    async def on_payment_instructed(event: Envelope[PaymentInstructed]) -> None:
        if event.event_id in delivered:
            return  # the same send delivered again (the broker's at-least-once), not a new one
        delivered.add(event.event_id)
        task = asyncio.create_task(deliver(event, finance.answer(event.payload)))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    try:
        await broker.start()
        await (stop or asyncio.Event()).wait()
    finally:
        for task in list(in_flight):
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        await broker.stop()
