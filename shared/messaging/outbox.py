"""Transactional outbox: events are written with the state change, then relayed to Kafka.

No request handler publishes to the broker. A use case adds rows to the outbox in its
own transaction; the relay publishes unsent rows in insertion order and marks them sent.
If the broker is down the relay backs off and retries, keeping order: it stops at the
first row it cannot publish, so a later event for a key never overtakes an earlier one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy import bindparam, event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.envelope import Envelope
from shared.contracts.topics import Topic
from shared.lease import Lease
from shared.messaging.tables import MessagingTables

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    async def __call__(
        self, *, topic: str, key: str, body: bytes, headers: dict[str, str]
    ) -> None: ...


def message_headers(envelope: Envelope[Any]) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "correlation_id": envelope.correlation_id,
    }


class Outbox:
    """Writes events into the current transaction and wakes the relay on commit."""

    def __init__(self, tables: MessagingTables, topic_prefix: str = "") -> None:
        self._table = tables.outbox
        self._insert = tables.outbox.insert()
        self._prefix = topic_prefix
        self.committed = asyncio.Event()

    async def add(self, session: AsyncSession, topic: Topic, envelope: Envelope[BaseModel]) -> None:
        if not isinstance(envelope.payload, topic.payload):
            raise TypeError(
                f"{topic.name} carries {topic.payload.__name__}, "
                f"not {type(envelope.payload).__name__}"
            )
        # One statement object with its values as parameters: SQLAlchemy compiles it once,
        # where .values() would build and cache-key a new statement for every event.
        await session.execute(
            self._insert,
            {
                "event_id": str(envelope.event_id),
                "topic": topic.qualified(self._prefix),
                "message_key": envelope.application_id,
                "body": envelope.model_dump_json(),
                "headers": json.dumps(message_headers(envelope)),
                "created_at": datetime.now(UTC),
            },
        )
        event.listen(session.sync_session, "after_commit", self._on_commit, once=True)

    def _on_commit(self, _session: Any) -> None:
        self.committed.set()


class OutboxRelay:
    def __init__(
        self,
        tables: MessagingTables,
        session_factory: async_sessionmaker[AsyncSession],
        publish: Publisher,
        *,
        wake: asyncio.Event | None = None,
        poll_interval: float = 0.2,
        pass_interval: float = 0.0,
        batch_size: int = 200,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        lease: Lease | None = None,
        standby_interval: float = 2.0,
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
        self._pass_interval = pass_interval
        self._last_pass_at = float("-inf")
        self._batch_size = batch_size
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._stopping = asyncio.Event()
        self._lease = lease
        self._standby_interval = standby_interval
        self.published_total = 0

    async def run(self) -> None:
        """Relay until ``stop()``; broker errors are retried with exponential backoff.

        With a lease, a relay that does not hold it stands by and tries again every
        ``standby_interval``.
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
                    sent = await self.publish_pending()
                except Exception as error:  # the broker or the database is away: keep going
                    logger.warning(
                        "outbox relay could not publish, retrying in %.1fs: %r", backoff, error
                    )
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                backoff = self._min_backoff
                if sent < self._batch_size:
                    await self._sleep(self._poll_interval)
        finally:
            if self._lease is not None:
                await self._lease.release()

    @property
    def leading(self) -> bool:
        """Whether this relay publishes: it holds the lease, or needs none."""
        return self._lease is None or self._lease.held

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        if not self._stopping.is_set():
            # While commits keep coming, let them gather: a busy service pays one select and
            # one update per interval, not per event. After a quiet spell an event goes at once.
            delay = self._last_pass_at + self._pass_interval - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
        self._wake.clear()

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows in order; return how many were sent."""
        async with self._sessions() as session:
            rows = (await session.execute(self._unsent)).all()
        sent: list[int] = []
        try:
            for row in rows:
                await self._publish(
                    topic=row.topic,
                    key=row.message_key,
                    body=row.body.encode(),
                    headers=json.loads(row.headers),
                )
                sent.append(row.id)
        except Exception as error:
            await self._record_failure(rows[len(sent)].id, error)
            raise
        finally:
            await self._mark_sent(sent)
        return len(sent)

    async def _mark_sent(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        async with self._sessions() as session, session.begin():
            await session.execute(self._mark, {"ids": list(ids), "sent_at": datetime.now(UTC)})
        self.published_total += len(ids)

    async def _record_failure(self, row_id: int, error: Exception) -> None:
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(self._table)
                    .where(self._table.c.id == row_id)
                    .values(attempts=self._table.c.attempts + 1, last_error=repr(error)[:2000])
                )
        except Exception:  # recording the failure must not hide the failure itself
            logger.exception("could not record outbox failure for row %s", row_id)

    async def pending_count(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(self._table).where(self._table.c.sent_at.is_(None))
            )
            return int(count or 0)
