"""A stand-in finance system: it pays instructions after a delay, and sometimes does not;
it collects refunds from the members, and sometimes cannot.

It speaks only the public finance topics (``finance.payment.instructed.v1`` in,
``finance.payment.settled.v1`` / ``finance.payment.failed.v1`` out;
``finance.refund.requested.v1`` in, ``finance.refund.received.v1`` /
``finance.refund.failed.v1`` out), so a real finance system can take its place. Like a
real one it is idempotent by instruction id and refund id: an instruction sent again after
it was paid gets the same settlement again, a refund asked again (a reminder) after it
was collected gets the same receipt again; and one send delivered twice (same event id)
is answered once. It keeps no database; what it paid is forgotten when it stops.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.contracts.envelope import Envelope, new_envelope
from shared.contracts.finance import (
    PaymentFailed,
    PaymentInstructed,
    PaymentSettled,
    RefundCollected,
    RefundCollectionFailed,
    RefundCollectionRequested,
)
from shared.contracts.topics import (
    FINANCE_REFUND_FAILED,
    FINANCE_REFUND_RECEIVED,
    FINANCE_REFUND_REQUESTED,
    PAYMENT_FAILED,
    PAYMENT_INSTRUCTED,
    PAYMENT_SETTLED,
    Topic,
)
from shared.messaging.broker import create_broker, kafka_publisher, subscribe_by_topic
from shared.messaging.outbox import message_headers
from shared.settings import CommonSettings

PRODUCER = "finance"
FAILURE_REASON = "simulated: the payee's bank rejected the transfer"
REFUND_FAILURE_REASON = "simulated: the member's bank rejected the direct debit"

logger = logging.getLogger(__name__)


Notice = PaymentSettled | PaymentFailed | RefundCollected | RefundCollectionFailed
Done = TypeVar("Done", PaymentSettled, RefundCollected)


@dataclass(frozen=True)
class _Answer:
    notice: Notice
    copies: int


class _Finance:
    """The simulator's decisions, made in the order instructions arrive (seeded)."""

    def __init__(
        self,
        failure_rate: float,
        duplicate_rate: float,
        seed: int | None,
        fail_first_sends: int = 0,
        refund_failure_rate: float = 0.0,
    ) -> None:
        if not all(0 <= rate <= 1 for rate in (failure_rate, duplicate_rate, refund_failure_rate)):
            raise ValueError("failure and duplicate rates are between 0 and 1")
        if fail_first_sends < 0:
            raise ValueError("the sends to fail first cannot be negative")
        self.failure_rate = failure_rate
        self.duplicate_rate = duplicate_rate
        self.fail_first_sends = fail_first_sends
        self.random = random.Random(seed)
        self.refund_failure_rate = refund_failure_rate
        self.paid: dict[str, PaymentSettled] = {}
        self.sends: dict[str, int] = {}
        self.collected: dict[str, RefundCollected] = {}

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
            finance_reference=self._reference("SIM"),
            amount=instruction.amount,
        )
        return self._done(self.paid, instruction.instruction_id, settled)

    def collect(self, request: RefundCollectionRequested) -> _Answer:
        """Collect what is outstanding of a refund in one receipt, or fail to."""
        known = self.collected.get(request.refund_id)
        if known is not None:
            return _Answer(known, 1)
        if self.random.random() < self.refund_failure_rate:
            failed = RefundCollectionFailed(
                refund_id=request.refund_id, reason=REFUND_FAILURE_REASON
            )
            return _Answer(failed, 1)
        received = RefundCollected(
            refund_id=request.refund_id,
            finance_reference=self._reference("SIM-R"),
            amount=request.outstanding,
        )
        return self._done(self.collected, request.refund_id, received)

    def _reference(self, prefix: str) -> str:
        return f"{prefix}-{self.random.getrandbits(48):012x}"

    def _done(self, done: dict[str, Done], key: str, notice: Done) -> _Answer:
        """Remember what was done, so that asking again gets the same notice; a share is
        delivered twice, as a finance system retrying its delivery would."""
        done[key] = notice
        copies = 2 if self.random.random() < self.duplicate_rate else 1
        return _Answer(notice, copies)


def _topic(notice: Notice) -> Topic:
    match notice:
        case PaymentSettled():
            return PAYMENT_SETTLED
        case PaymentFailed():
            return PAYMENT_FAILED
        case RefundCollected():
            return FINANCE_REFUND_RECEIVED
        case RefundCollectionFailed():
            return FINANCE_REFUND_FAILED


async def run_finance_sim(
    settings: CommonSettings,
    *,
    delay_seconds: float,
    failure_rate: float,
    duplicate_rate: float,
    seed: int | None,
    fail_first_sends: int = 0,
    refund_failure_rate: float = 0.0,
    refund_delay_seconds: float | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Answer payment instructions and refund requests until ``stop`` is set (or forever).

    ``failure_rate``: share of instructions refused; ``duplicate_rate``: share of
    settlements and refund receipts delivered twice (as a finance system retrying its
    delivery would); ``fail_first_sends``: every instruction is refused this many times
    before the rates decide (a payee's bank that rejects the first transfers);
    ``refund_failure_rate``: share of refund requests (and reminders) finance fails to
    collect; ``refund_delay_seconds``: how long a refund takes to arrive (default: the
    payments' delay), so a long one outlasts the reminders.
    """
    finance = _Finance(
        failure_rate,
        duplicate_rate,
        seed,
        fail_first_sends,
        refund_failure_rate=refund_failure_rate,
    )
    refund_delay = delay_seconds if refund_delay_seconds is None else refund_delay_seconds
    broker, _dead_letters = create_broker(settings, client_id="grantflow-finance-sim")
    publish = kafka_publisher(broker)
    in_flight: set[asyncio.Task[None]] = set()
    delivered: set[uuid.UUID] = set()

    async def deliver(cause: Envelope[Any], answer: _Answer, delay: float) -> None:
        await asyncio.sleep(delay)
        topic = _topic(answer.notice)
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
        logger.info("finance simulator answered %s: %s", cause.event_id, topic.name)

    def answer_later(cause: Envelope[Any], answer: _Answer, delay: float) -> None:
        delivered.add(cause.event_id)
        task = asyncio.create_task(deliver(cause, answer, delay))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    async def on_payment_instructed(event: Envelope[Any]) -> None:
        # The same send delivered again (the broker's at-least-once) is not a new one.
        if event.event_id not in delivered:
            answer_later(event, finance.answer(event.payload), delay_seconds)

    async def on_refund_requested(event: Envelope[Any]) -> None:
        if event.event_id not in delivered:
            answer_later(event, finance.collect(event.payload), refund_delay)

    subscribe_by_topic(
        broker,
        settings,
        {PAYMENT_INSTRUCTED: on_payment_instructed, FINANCE_REFUND_REQUESTED: on_refund_requested},
        group_id=f"{settings.topic_prefix}grantflow-finance-sim",
    )

    try:
        await broker.start()
        await (stop or asyncio.Event()).wait()
    finally:
        for task in list(in_flight):
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        await broker.stop()
