"""One replica of a service at a time does a thing: a PostgreSQL advisory lock.

The outbox relay takes one: two replicas would otherwise both publish every unsent row.
The inboxes would drop the copies, but the traffic doubles and per-key order is no longer
one writer's. The service's background jobs (mail, deadline scans) take another, so that
mail goes out once. SQLite, one host's embedded database with one process per service,
needs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

logger = logging.getLogger(__name__)


class Lease:
    """The lock lives on a connection of its own: if the holder dies, PostgreSQL ends its
    session and another replica takes the lease on its next try."""

    def __init__(self, engine: AsyncEngine, name: str, *, confirm_every: float = 2.0) -> None:
        # An engine of its own, without a pool: the held connection must not take one of
        # the request pool's connections away for the process's lifetime.
        self._engine = create_async_engine(engine.url, poolclass=NullPool)
        self._name = name
        digest = hashlib.sha256(f"grantflow:{name}".encode()).digest()
        self._key = int.from_bytes(digest[:8], "big", signed=True)
        self._confirm_every = confirm_every
        self._confirmed_at = float("-inf")
        self._connection: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None

    async def keep(self) -> bool:
        """Take the lock if it is free, or confirm the held one (at most every
        ``confirm_every`` seconds); True while this process holds it."""
        if self._connection is None:
            return await self._acquire()
        now = asyncio.get_running_loop().time()
        if now - self._confirmed_at < self._confirm_every:
            return True
        self._confirmed_at = now
        try:
            await self._connection.scalar(text("SELECT 1"))
        except Exception:
            logger.warning("lost the %s lease with its connection; standing by", self._name)
            await self.release()
            return False
        return True

    async def _acquire(self) -> bool:
        connection = await self._engine.connect()
        try:
            got = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            )
        except BaseException:
            await connection.close()
            raise
        if not got:
            await connection.close()
            return False
        self._connection = connection
        return True

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # closing ends the session and its lock
                await connection.close()
        await self._engine.dispose()
