"""Dead letters for Kafka consumers, and the acknowledgement that goes with them.

FastStream has no dead-letter handling for Kafka, and a nack re-reads the same message
at once, so a poison message would loop forever. This middleware owns acknowledgement
for every subscriber made with ``shared.messaging.broker.subscriber``:

- processed: the offset is committed;
- unparseable or invalid (JSON, envelope or payload validation, ``PoisonMessage``): the
  message goes to ``<topic>.dlq`` at once with the reason and its original bytes, and its
  offset is committed;
- the handler failed: the partition is rewound to the message after a growing pause;
  after ``max_attempts`` failures it is dead-lettered like a poison message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from faststream import BaseMiddleware
from faststream.exceptions import SubscriberNotFound
from pydantic import ValidationError

from shared.contracts.topics import DEAD_LETTER_SUFFIX
from shared.messaging.outbox import Publisher

logger = logging.getLogger(__name__)


class PoisonMessage(Exception):  # noqa: N818 - the name says what the message is
    """Raised by a handler for a message that can never be processed (e.g. unknown application)."""


_POISON = (
    ValidationError,
    json.JSONDecodeError,
    UnicodeDecodeError,
    PoisonMessage,
    SubscriberNotFound,
)


def _is_poison(error: BaseException) -> bool:
    if isinstance(error, _POISON):
        return True
    # fast-depends wraps argument validation in its own error type, whose cause is pydantic's.
    return type(error).__name__ == "ValidationError" or isinstance(error.__cause__, ValidationError)


@dataclass
class DeadLetterPolicy:
    """Shared state of the middleware: the publisher and the failure counts per offset."""

    publish: Publisher | None = None
    max_attempts: int = 5
    base_backoff: float = 0.05
    max_backoff: float = 2.0
    dead_lettered: int = 0
    _attempts: OrderedDict[tuple[str, int, int], int] = field(default_factory=OrderedDict)

    def __call__(self, msg: Any | None, /, *, context: Any) -> _DeadLetterScope:
        return _DeadLetterScope(msg, context=context, policy=self)

    def failed(self, record: ConsumerRecord[Any, Any]) -> int:
        key = (record.topic, record.partition, record.offset)
        attempts = self._attempts.pop(key, 0) + 1
        self._attempts[key] = attempts
        while len(self._attempts) > 10_000:
            self._attempts.popitem(last=False)
        return attempts

    def forget(self, record: ConsumerRecord[Any, Any]) -> None:
        self._attempts.pop((record.topic, record.partition, record.offset), None)

    def backoff(self, attempts: int) -> float:
        return float(min(self.base_backoff * 2 ** (attempts - 1), self.max_backoff))

    async def dead_letter(
        self, record: ConsumerRecord[Any, Any], reason: str, attempts: int, group: str | None
    ) -> None:
        if self.publish is None:
            raise RuntimeError("dead-letter policy has no publisher")
        raw: bytes = record.value or b""
        headers = {key: value.decode(errors="replace") for key, value in record.headers or ()}
        body = {
            "reason": reason,
            "attempts": attempts,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key.decode(errors="replace") if record.key else None,
            "consumer_group": group,
            "dead_lettered_at": datetime.now(UTC).isoformat(),
            "original_headers": headers,
            "original_base64": base64.b64encode(raw).decode(),
        }
        await self.publish(
            topic=record.topic + DEAD_LETTER_SUFFIX,
            key=record.key.decode(errors="replace") if record.key else "",
            body=json.dumps(body).encode(),
            headers={"content-type": "application/json", "dlq_reason": reason[:500]},
        )
        self.dead_lettered += 1
        logger.error(
            "message dead-lettered",
            extra={
                "topic": record.topic,
                "offset": record.offset,
                "reason": reason,
                "attempts": attempts,
            },
        )


class _DeadLetterScope(BaseMiddleware):
    def __init__(self, msg: Any | None, /, *, context: Any, policy: DeadLetterPolicy) -> None:
        super().__init__(msg, context=context)
        self.policy = policy

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        record = self.msg
        subscriber = self.context.get_local("handler_")
        consumer = getattr(record, "consumer", None) or getattr(subscriber, "consumer", None)
        if not isinstance(record, ConsumerRecord) or consumer is None:
            return False  # not a Kafka record (in-memory test broker): FastStream decides
        if exc_val is None:
            self.policy.forget(record)
            await consumer.commit()
            return None
        if isinstance(exc_val, asyncio.CancelledError):
            return False
        group = getattr(getattr(subscriber, "_connection_args", {}), "get", lambda _k: None)(
            "group_id"
        )
        if _is_poison(exc_val):
            reason = f"invalid message: {_describe(exc_val)}"
            attempts = 1
        else:
            attempts = self.policy.failed(record)
            if attempts < self.policy.max_attempts:
                logger.warning(
                    "handler failed (attempt %s of %s), retrying: %r",
                    attempts,
                    self.policy.max_attempts,
                    exc_val,
                )
                await asyncio.sleep(self.policy.backoff(attempts))
                consumer.seek(TopicPartition(record.topic, record.partition), record.offset)
                return True
            reason = f"processing failed {attempts} times: {_describe(exc_val)}"
        await self.policy.dead_letter(record, reason, attempts, group)
        self.policy.forget(record)
        await consumer.commit()
        return True


def _describe(error: BaseException) -> str:
    cause = error if isinstance(error, ValidationError) else error.__cause__ or error
    if isinstance(cause, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in cause.errors()[:10]
        )
        return f"validation failed: {problems}"
    return f"{type(error).__name__}: {error}"[:2000]
