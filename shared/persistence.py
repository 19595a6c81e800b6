"""What every service's store shares: the session of one unit of work, and the queries
each store would otherwise write again (a row or none, a page with its total, an upsert)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, Executable, Row, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

# A row of any columns, which unpacks and slices as the tuple it is.
AnyRow = Row[*tuple[Any, ...]]


def set_in_filter(*wanted: tuple[Column[Any], object | None]) -> list[ColumnElement[bool]]:
    """A column equal to each value the filter sets; a value left out (None) matches all."""
    return [column == value for column, value in wanted if value is not None]


class Store:
    """The queries of one unit of work, over its session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _one(
        self, query: Executable, params: Mapping[str, Any] | None = None
    ) -> AnyRow | None:
        """The first row the query finds, or None."""
        return (await self.session.execute(query, params)).first()

    async def _all(self, query: Executable) -> Sequence[AnyRow]:
        return (await self.session.execute(query)).all()

    async def _page(
        self,
        table: Table,
        *where: ColumnElement[bool],
        order_by: Sequence[Any],
        limit: int,
        offset: int,
    ) -> tuple[Sequence[AnyRow], int]:
        """The rows of ``table`` that match, in order, from ``offset``; and how many match."""
        total = await self.session.scalar(select(func.count()).select_from(table).where(*where))
        rows = await self._all(
            select(table).where(*where).order_by(*order_by).limit(limit).offset(offset)
        )
        return rows, int(total or 0)

    async def _upsert(self, table: Table, key: dict[str, Any], values: dict[str, Any]) -> None:
        """Update the row with ``key``, or insert it.

        Not atomic: of two callers that both find no row, the second fails on the key, so
        callers that may race take a lock first.
        """
        condition = [table.c[name] == value for name, value in key.items()]
        changed = await self.session.execute(update(table).where(*condition).values(**values))
        if changed.rowcount == 0:  # type: ignore[attr-defined]
            await self.session.execute(table.insert().values(**key, **values))
