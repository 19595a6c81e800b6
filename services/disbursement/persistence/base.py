"""What the parts of ``DisbursementStore`` share: one unit of work's session, the upsert."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, update
from sqlalchemy.ext.asyncio import AsyncSession


class StoreBase:
    """A part of ``DisbursementStore``: its queries run over ``session``."""

    session: AsyncSession

    async def _upsert(self, table: Table, key: dict[str, Any], values: dict[str, Any]) -> None:
        """Update the row with ``key``, or insert it (callers hold the program lock)."""
        condition = [table.c[name] == value for name, value in key.items()]
        changed = await self.session.execute(update(table).where(*condition).values(**values))
        if changed.rowcount == 0:  # type: ignore[attr-defined]
            await self.session.execute(table.insert().values(**key, **values))
