"""Transactional outbox: events are written with the state change, then relayed to Kafka.

No request handler publishes to the broker. A use case adds rows to the outbox in its
own transaction; the relay publishes unsent rows and marks them sent.

Order: one application's events (the Kafka key) go out in the order they were written.
A row that cannot be published holds back the later rows of its key only: the relay
carries on with every other key, so one bad partition does not stall the service.

Sent rows are kept for ``retention``: when the broker turns out to have forgotten what
it acknowledged (an embedded broker restarted empty: ``shared.messaging.epoch``), the
relay publishes them all again, and the consumers' inboxes drop what they already had.
Rows that answer a command (``subject`` set) are kept for good, so that a repeated
command can always be answered again (``shared.messaging.receipts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import utc_now
from shared.contracts.envelope import Envelope
from shared.contracts.topics import Topic
from shared.db import statement_by_statement
from shared.lease import Lease
from shared.messaging.tables import MessagingTables
from shared.telemetry.tracing import current_trace_headers, publishing

logger = logging.getLogger(__name__)

# Keys published side by side in one pass; one key's rows go one after the other.
RELAY_CONCURRENCY = 32
# A pass that sent this many rows means commits come faster than passes: the next pass
# waits out the pass interval to take them together.
GATHER_AFTER = 3


class Publisher(Protocol):
    async def __call__(
        self, *, topic: str, key: str, body: bytes, headers: dict[str, str]
    ) -> None: ...


def message_headers(envelope: Envelope[Any]) -> dict[str, str]:
    """The Kafka headers of an event, with the trace context it was written in (if any):
    stored in the outbox row, they carry the trace across the commit to the broker."""
    return {
        "content-type": "application/json",
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "producer": envelope.producer,
        "correlation_id": envelope.correlation_id,
        **current_trace_headers(),
    }


class Outbox:
    """Writes events into the current transaction and wakes the relay on commit."""

    def __init__(self, tables: MessagingTables, topic_prefix: str = "") -> None:
        self._table = tables.outbox
        self._insert = tables.outbox.insert()
        self._prefix = topic_prefix
        self.committed = asyncio.Event()

    async def add(
        self,
        session: AsyncSession,
        topic: Topic,
        envelope: Envelope[Any],
        *,
        subject: str | None = None,
    ) -> None:
        """Publish ``envelope`` on ``topic`` when the transaction commits.

        ``subject`` files the event as an answer (``shared.messaging.receipts``): a
        repeated command about the same subject gets it again.
        """
        if not isinstance(envelope.payload, topic.payload):
            raise TypeError(
                f"{topic.name} carries {topic.payload.__name__}, "
                f"not {type(envelope.payload).__name__}"
            )
        await self.add_raw(
            session,
            event_id=str(envelope.event_id),
            topic=topic.qualified(self._prefix),
            key=envelope.application_id,
            body=envelope.model_dump_json(),
            headers=message_headers(envelope),
            subject=subject,
        )

    async def add_raw(
        self,
        session: AsyncSession,
        *,
        event_id: str,
        topic: str,
        key: str,
        body: str,
        headers: dict[str, str],
        subject: str | None = None,
    ) -> None:
        """An already-encoded message (a dead letter, a replay), on a broker topic name."""
        # One statement object with its values as parameters: SQLAlchemy compiles it once,
        # where .values() would build and cache-key a new statement for every event.
        await session.execute(
            self._insert,
            {
                "event_id": event_id,
                "topic": topic,
                "message_key": key,
                "body": body,
                "headers": json.dumps(headers),
                "created_at": utc_now(),
                "subject": subject,
            },
        )
        self.wake_on_commit(session)

    async def contains(self, session: AsyncSession, event_id: str) -> bool:
        found = await session.scalar(
            select(self._table.c.id).where(self._table.c.event_id == event_id)
        )
        return found is not None

    async def republish_subject(self, session: AsyncSession, subject: str) -> int:
        """Publish every answer filed under ``subject`` again (same event ids)."""
        result = await session.execute(
            update(self._table)
            .where(self._table.c.subject == subject, self._table.c.sent_at.is_not(None))
            .values(sent_at=None)
        )
        self.wake_on_commit(session)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def republish_event(self, session: AsyncSession, event_id: str) -> bool:
        """Publish one event of ours again; False when there is no such event."""
        result = await session.execute(
            update(self._table).where(self._table.c.event_id == event_id).values(sent_at=None)
        )
        self.wake_on_commit(session)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def wake_on_commit(self, session: AsyncSession) -> None:
        event.listen(session.sync_session, "after_commit", self._on_commit, once=True)

    def _on_commit(self, _session: Any) -> None:
        self.committed.set()


async def republish_retained(
    session: AsyncSession, tables: MessagingTables, retention: timedelta
) -> int:
    """Mark every row sent within ``retention`` (and every answer) unsent again."""
    table = tables.outbox
    cutoff = utc_now() - retention
    result = await session.execute(
        update(table)
        .where(
            table.c.sent_at.is_not(None),
            (table.c.created_at >= cutoff) | table.c.subject.is_not(None),
        )
        .values(sent_at=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def prune_sent(session: AsyncSession, tables: MessagingTables, retention: timedelta) -> int:
    """Forget rows sent longer than ``retention`` ago; answers to commands stay."""
    table = tables.outbox
    cutoff = utc_now() - retention
    result = await session.execute(
        delete(table).where(
            table.c.sent_at.is_not(None), table.c.created_at < cutoff, table.c.subject.is_(None)
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class OutboxRelay:
    def __init__(
        self,
        tables: MessagingTables,
        session_factory: async_sessionmaker[AsyncSession],
        publish: Publisher,
        *,
        wake: asyncio.Event | None = None,
        poll_interval: float = 0.2,
        idle_poll_interval: float | None = None,
        quiet_after: float = 2.0,
        pass_interval: float = 0.0,
        batch_size: int = 500,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        lease: Lease | None = None,
        standby_interval: float = 2.0,
        before_pass: Callable[[], Awaitable[bool]] | None = None,
        service: str = "",
    ) -> None:
        self._table = table = tables.outbox
        self._unsent = (
            select(table.c.id, table.c.topic, table.c.message_key, table.c.body, table.c.headers)
            .where(table.c.sent_at.is_(None))
            .order_by(table.c.id)
            .limit(batch_size)
        )
        self._mark = (
            update(table)
            .where(table.c.id.in_(bindparam("ids", expanding=True)))
            .values(sent_at=bindparam("sent_at"))
        )
        self._sessions = session_factory
        self._publish = publish
        self._wake = wake or asyncio.Event()
        self._poll_interval = poll_interval
        self._idle_poll_interval = max(idle_poll_interval or poll_interval, poll_interval)
        self._quiet_after = quiet_after
        self._last_sent_at = float("-inf")
        self._pass_interval = pass_interval
        self._last_pass_at = float("-inf")
        self._batch_size = batch_size
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._stopping = asyncio.Event()
        self._lease = lease
        self._standby_interval = standby_interval
        self._before_pass = before_pass
        self._service = service
        self.published_total = 0
        self.failed_total = 0
        self._last_pass_sent = 0

    async def run(self) -> None:
        """Relay until ``stop()``; broker errors are retried with exponential backoff.

        With a lease, a relay that does not hold it stands by and tries again every
        ``standby_interval``. ``before_pass`` (the broker-epoch check) may hold a pass
        back: while it answers False, nothing is published.
        """
        backoff = self._min_backoff
        try:
            while not self._stopping.is_set():
                try:
                    leading = self._lease is None or await self._lease.keep()
                except Exception as error:  # the database is away: keep trying
                    logger.warning("outbox relay could not take its lease: %r", error)
                    leading = False
                if not leading:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self._standby_interval)
                    continue
                self._last_pass_at = asyncio.get_running_loop().time()
                try:
                    if self._before_pass is not None and not await self._before_pass():
                        await self._sleep(self._min_backoff * 5)
                        continue
                    sent, blocked = await self.publish_pending()
                    self._last_pass_sent = sent
                except Exception as error:  # the broker or the database is away: keep going
                    logger.warning(
                        "outbox relay could not publish, retrying in %.1fs: %r", backoff, error
                    )
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                if blocked:
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                backoff = self._min_backoff
                if sent < self._batch_size:
                    await self._sleep(self._next_poll(sent))
        finally:
            if self._lease is not None:
                await self._lease.release()

    def _next_poll(self, sent: int) -> float:
        """The poll finds only rows that another process committed (a replica, a command
        run beside the service): this process's own commits wake the relay at once. So
        after a quiet spell it polls at the idle interval, which costs an idle service
        one query a second instead of five."""
        now = asyncio.get_running_loop().time()
        if sent:
            self._last_sent_at = now
        if now - self._last_sent_at < self._quiet_after:
            return self._poll_interval
        return self._idle_poll_interval

    @property
    def leading(self) -> bool:
        """Whether this relay publishes: it holds the lease, or needs none."""
        return self._lease is None or self._lease.held

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        if not self._stopping.is_set() and self._last_pass_sent >= GATHER_AFTER:
            # While commits pile up, let them gather: a busy service pays one select and one
            # update per interval, not per event. While each pass finds an event or two, the
            # next goes at once: gathering would only add the interval to every hop.
            delay = self._last_pass_at + self._pass_interval - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
        self._wake.clear()

    async def publish_pending(self) -> tuple[int, int]:
        """Publish one batch of unsent rows; return (rows sent, rows held back by a failure).

        The batch is split by key; keys go side by side, one key's rows in order, and a
        key stops at its first failure, holding back only its own later rows.
        """
        async with statement_by_statement(self._sessions) as session:
            rows = (await session.execute(self._unsent)).all()
        by_key: dict[str, list[Any]] = {}
        for row in rows:
            by_key.setdefault(row.message_key, []).append(row)
        sent: list[int] = []
        failures: list[tuple[int, BaseException]] = []
        held_back = 0
        gate = asyncio.Semaphore(RELAY_CONCURRENCY)

        async def publish_key(key_rows: list[Any]) -> None:
            nonlocal held_back
            async with gate:
                for index, row in enumerate(key_rows):
                    try:
                        with publishing(
                            row.topic, row.message_key, json.loads(row.headers), self._service
                        ) as headers:
                            await self._publish(
                                topic=row.topic,
                                key=row.message_key,
                                body=row.body.encode(),
                                headers=headers,
                            )
                    except Exception as error:
                        failures.append((row.id, error))
                        held_back += len(key_rows) - index
                        return
                    sent.append(row.id)

        try:
            await asyncio.gather(*(publish_key(key_rows) for key_rows in by_key.values()))
        finally:
            await self._mark_sent(sent)
            if failures:
                await self._record_failures(failures)
        if failures and not sent:
            # Nothing went through: the broker is away rather than one partition.
            raise failures[0][1]
        if failures:
            logger.warning(
                "outbox relay: %s rows held back behind %s failures (first: %r)",
                held_back,
                len(failures),
                failures[0][1],
            )
        return len(sent), held_back

    async def _mark_sent(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        async with statement_by_statement(self._sessions) as session:
            await session.execute(self._mark, {"ids": list(ids), "sent_at": utc_now()})
            await session.commit()
        self.published_total += len(ids)

    async def _record_failures(self, failures: list[tuple[int, BaseException]]) -> None:
        self.failed_total += len(failures)
        try:
            async with self._sessions() as session, session.begin():
                for row_id, error in failures:
                    await session.execute(
                        update(self._table)
                        .where(self._table.c.id == row_id)
                        .values(attempts=self._table.c.attempts + 1, last_error=repr(error)[:2000])
                    )
        except Exception:  # recording the failure must not hide the failure itself
            logger.exception("could not record outbox failures")

    async def pending_count(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(self._table).where(self._table.c.sent_at.is_(None))
            )
            return int(count or 0)
