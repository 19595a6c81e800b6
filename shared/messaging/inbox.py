"""Inbox: a consumer's state change and the id of the event that caused it commit together.

A redelivered event finds its id in the inbox and changes nothing, so handlers are
idempotent even though Kafka delivers at least once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts.envelope import Envelope
from shared.messaging.tables import MessagingTables

logger = logging.getLogger(__name__)

StateChange = Callable[[AsyncSession], Awaitable[None]]


class Inbox:
    def __init__(
        self,
        tables: MessagingTables,
        session_factory: async_sessionmaker[AsyncSession],
        consumer: str,
    ) -> None:
        self._table = tables.inbox
        self._sessions = session_factory
        self.consumer = consumer

    async def process(self, envelope: Envelope[Any], topic: str, change: StateChange) -> bool:
        """Run ``change`` once per event id; return False when the event was seen before."""
        event_id = str(envelope.event_id)
        try:
            async with self._sessions() as session, session.begin():
                # Claim the id first: a duplicate (redelivered or concurrent) fails on the
                # primary key, and its state change is rolled back with it. Duplicates are
                # rare, so this saves a look-up on every first delivery.
                await session.execute(
                    self._table.insert().values(
                        event_id=event_id,
                        consumer=self.consumer,
                        topic=topic,
                        processed_at=datetime.now(UTC),
                    )
                )
                await session.flush()
                await change(session)
        except IntegrityError:
            async with self._sessions() as session:
                if await self._seen(session, event_id):
                    logger.info("duplicate event %s on %s ignored", event_id, topic)
                    return False
            raise
        return True

    async def _seen(self, session: AsyncSession, event_id: str) -> bool:
        found = await session.scalar(
            select(self._table.c.event_id).where(
                self._table.c.event_id == event_id, self._table.c.consumer == self.consumer
            )
        )
        return found is not None
