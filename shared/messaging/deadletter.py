"""Dead letters for Kafka consumers, and the acknowledgement that goes with them.

FastStream has no dead-letter handling for Kafka, and a nack re-reads the same message
at once, so a poison message would loop forever. This middleware owns acknowledgement
for every subscriber made with ``shared.messaging.broker.subscriber``:

- processed: the offset is committed;
- unparseable or invalid (JSON, envelope or payload validation, ``PoisonMessage``): the
  message goes to ``<topic>.dlq`` at once with the reason and its original bytes, and its
  offset is committed;
- something the handler needs is not answering (Temporal or the database restarting, a
  dropped connection, too many connections: ``shared.errors.is_dependency_outage``): the
  partition is rewound to the message after a growing pause, for as long as it takes.
  The message is not at fault, so these failures never count towards dead-lettering it;
  a dead letter here would lose an event that nobody sends again (an application
  submitted);
- the handler failed otherwise: the partition is rewound to the message after a growing
  pause; after ``max_attempts`` failures it is dead-lettered like a poison message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from faststream import BaseMiddleware
from faststream.exceptions import SubscriberNotFound
from pydantic import ValidationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import utc_now
from shared.contracts.topics import DEAD_LETTER_SUFFIX
from shared.errors import InvalidCommandError, is_dependency_outage
from shared.messaging.outbox import Outbox, Publisher
from shared.messaging.tables import MessagingTables

logger = logging.getLogger(__name__)


class PoisonMessage(Exception):  # noqa: N818 - the name says what the message is
    """Raised by a handler for a message that can never be processed (e.g. unknown application)."""


_POISON = (
    ValidationError,
    json.JSONDecodeError,
    UnicodeDecodeError,
    PoisonMessage,
    InvalidCommandError,
    SubscriberNotFound,
)


def _is_poison(error: BaseException) -> bool:
    if isinstance(error, _POISON):
        return True
    # fast-depends wraps argument validation in its own error type, whose cause is pydantic's.
    return type(error).__name__ == "ValidationError" or isinstance(error.__cause__, ValidationError)


def message_ref(record: ConsumerRecord[Any, Any]) -> str:
    """What identifies a message across restarts: its event id, else its position."""
    for key, value in record.headers or ():
        if key == "event_id" and value:
            return f"{record.topic}:{value.decode(errors='replace')[:64]}"
    return f"{record.topic}:{record.partition}:{record.offset}"


def dead_letter_body(
    record: ConsumerRecord[Any, Any], reason: str, attempts: int, group: str | None
) -> dict[str, Any]:
    raw: bytes = record.value or b""
    headers = {key: value.decode(errors="replace") for key, value in record.headers or ()}
    return {
        "reason": reason,
        "attempts": attempts,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": record.key.decode(errors="replace") if record.key else None,
        "consumer_group": group,
        "dead_lettered_at": utc_now().isoformat(),
        "original_headers": headers,
        "original_base64": base64.b64encode(raw).decode(),
    }


class DeadLetterStore:
    """Failure counts and dead letters in the service's database.

    Counts survive a restart (a message that fails on every start is still dead-lettered
    after ``max_attempts``), and a dead letter is kept for ``grantflow dlq`` and
    published to ``<topic>.dlq`` through the outbox, in the same transaction.
    """

    def __init__(
        self,
        tables: MessagingTables,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
    ) -> None:
        self._failures = tables.consumer_failures
        self._letters = tables.dead_letters
        self._sessions = sessions
        self._outbox = outbox

    async def failed(self, record: ConsumerRecord[Any, Any], error: str) -> int:
        ref = message_ref(record)
        table = self._failures
        async with self._sessions() as session, session.begin():
            attempts = await session.scalar(
                select(table.c.attempts).where(table.c.message_ref == ref).with_for_update()
            )
            if attempts is None:
                attempts = 1
                await session.execute(
                    insert(table).values(
                        message_ref=ref, attempts=1, last_error=error[:2000], updated_at=utc_now()
                    )
                )
            else:
                attempts += 1
                await session.execute(
                    update(table)
                    .where(table.c.message_ref == ref)
                    .values(attempts=attempts, last_error=error[:2000], updated_at=utc_now())
                )
        return int(attempts)

    async def forget(self, record: ConsumerRecord[Any, Any]) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(self._failures).where(self._failures.c.message_ref == message_ref(record))
            )

    async def dead_letter(
        self, record: ConsumerRecord[Any, Any], reason: str, attempts: int, group: str | None
    ) -> None:
        body = dead_letter_body(record, reason, attempts, group)
        key = record.key.decode(errors="replace") if record.key else ""
        async with self._sessions() as session, session.begin():
            await session.execute(
                insert(self._letters).values(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    message_key=key[:255] or None,
                    consumer_group=group,
                    reason=reason,
                    attempts=attempts,
                    headers=json.dumps(body["original_headers"]),
                    body_base64=body["original_base64"],
                    event_id=_event_id(record),
                    dead_lettered_at=utc_now(),
                )
            )
            await self._outbox.add_raw(
                session,
                event_id=str(uuid.uuid4()),
                topic=record.topic + DEAD_LETTER_SUFFIX,
                key=key,
                body=json.dumps(body),
                headers={"content-type": "application/json", "dlq_reason": reason[:500]},
            )
            await session.execute(
                delete(self._failures).where(self._failures.c.message_ref == message_ref(record))
            )


def _event_id(record: ConsumerRecord[Any, Any]) -> str | None:
    for key, value in record.headers or ():
        if key == "event_id" and value:
            return str(value.decode(errors="replace"))[:36]
    return None


@dataclass
class DeadLetterPolicy:
    """Shared state of the middleware: where dead letters go and the failure counts.

    With a ``store`` (every service) counts and dead letters live in the database; without
    one (a process with no database) counts are kept in memory and dead letters are
    published at once.
    """

    publish: Publisher | None = None
    store: DeadLetterStore | None = None
    max_attempts: int = 5
    base_backoff: float = 0.05
    max_backoff: float = 2.0
    by_topic: Counter[str] = field(default_factory=Counter)
    _attempts: OrderedDict[str, int] = field(default_factory=OrderedDict)
    _waits: int = 0

    def __call__(self, msg: Any | None, /, *, context: Any) -> _DeadLetterScope:
        return _DeadLetterScope(msg, context=context, policy=self)

    @property
    def dead_lettered(self) -> int:
        return sum(self.by_topic.values())

    async def failed(self, record: ConsumerRecord[Any, Any], error: BaseException) -> int:
        ref = message_ref(record)
        if self.store is not None:
            attempts = await self.store.failed(record, repr(error))
        else:
            attempts = self._attempts.pop(ref, 0) + 1
            while len(self._attempts) >= 10_000:
                self._attempts.popitem(last=False)
        self._attempts[ref] = attempts
        return attempts

    async def succeeded(self, record: ConsumerRecord[Any, Any]) -> None:
        self._waits = 0
        # Only a message that failed before costs a statement on success.
        if self._attempts.pop(message_ref(record), None) is not None and self.store is not None:
            await self.store.forget(record)

    def backoff(self, attempts: int) -> float:
        return float(min(self.base_backoff * 2 ** (attempts - 1), self.max_backoff))

    async def wait_for_dependency(self, error: BaseException) -> None:
        """Pause before the message is tried again; the pause grows while the outage lasts."""
        self._waits += 1
        pause = self.backoff(self._waits)
        if self._waits == 1 or self._waits % 10 == 0:
            logger.warning(
                "a system the handler needs is not answering (wait %s), trying again in %.2f s: %r",
                self._waits,
                pause,
                error,
            )
        await asyncio.sleep(pause)

    async def dead_letter(
        self, record: ConsumerRecord[Any, Any], reason: str, attempts: int, group: str | None
    ) -> None:
        self._attempts.pop(message_ref(record), None)
        if self.store is not None:
            await self.store.dead_letter(record, reason, attempts, group)
        else:
            if self.publish is None:
                raise RuntimeError("dead-letter policy has no publisher")
            await self.publish(
                topic=record.topic + DEAD_LETTER_SUFFIX,
                key=record.key.decode(errors="replace") if record.key else "",
                body=json.dumps(dead_letter_body(record, reason, attempts, group)).encode(),
                headers={"content-type": "application/json", "dlq_reason": reason[:500]},
            )
        self.by_topic[record.topic] += 1
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
            await self.policy.succeeded(record)
            await consumer.commit()
            return None
        if isinstance(exc_val, asyncio.CancelledError):
            return False
        group = getattr(subscriber, "group_id", None)
        if is_dependency_outage(exc_val) and not _is_poison(exc_val):
            await self.policy.wait_for_dependency(exc_val)
            consumer.seek(TopicPartition(record.topic, record.partition), record.offset)
            return True
        if _is_poison(exc_val):
            reason = f"invalid message: {_describe(exc_val)}"
            attempts = 1
        else:
            attempts = await self.policy.failed(record, exc_val)
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
