"""Command receipts: a service answers a repeated command with what it answered before.

The workflow does not trust the broker: a command it sent and heard nothing back from is
sent again (same ``command_id``, new event id). The answer may have been lost on its way
back (a broker that forgot, a killed relay), so "seen before, nothing to do" would leave
the workflow waiting for good. Instead every answer a service publishes is filed in its
outbox under a *subject* (the command, or what a family of commands is about: one
review round, one report); a repeated command republishes every event filed under its
subject, with the same event ids, so the consumers' inboxes and the workflow drop what
they already had and take what they missed.
"""

from __future__ import annotations

import logging

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clock import utc_now
from shared.messaging.outbox import Outbox
from shared.messaging.tables import MessagingTables

logger = logging.getLogger(__name__)


class CommandReceipts:
    def __init__(self, tables: MessagingTables, outbox: Outbox) -> None:
        self._table = tables.commands
        self._outbox = outbox

    async def first_time(
        self, session: AsyncSession, *, command_id: str, topic: str, subject: str
    ) -> bool:
        """Record the command; for one handled before, answer it again and return False."""
        known = await session.scalar(
            select(self._table.c.subject).where(self._table.c.command_id == command_id)
        )
        if known is not None:
            again = await self.answer_again(session, known)
            logger.info(
                "command %s on %s handled before: %s answer(s) published again",
                command_id,
                topic,
                again,
            )
            return False
        await session.execute(
            insert(self._table).values(
                command_id=command_id, topic=topic, subject=subject, handled_at=utc_now()
            )
        )
        return True

    async def seen(self, session: AsyncSession, command_id: str) -> bool:
        found = await session.scalar(
            select(self._table.c.command_id).where(self._table.c.command_id == command_id)
        )
        return found is not None

    async def answer_again(self, session: AsyncSession, subject: str) -> int:
        """Publish every answer filed under ``subject`` again; how many there were."""
        return await self._outbox.republish_subject(session, subject)
