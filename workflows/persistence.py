"""The workflows process's tables and every query on them.

- The messaging tables: the workflow's only side effect is publishing; the publishing
  activity writes into this outbox and the relay publishes, so the workflow's events get
  the same protection as every service's (a broker that forgets them gets them again).
- The officers' attention list (migration 0002): one item per escalation, cleared when a
  later status event of the application no longer lists its kind as waiting; and per
  application the last status event seen, so an older one arriving late changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from shared.db import Id, UtcDateTime
from shared.messaging.tables import define_messaging_tables
from shared.persistence import Store, set_in_filter

metadata = MetaData()
messaging = define_messaging_tables(metadata, "workflows")

attention_items = Table(
    "workflows_attention_items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("application_id", String(100), nullable=False),
    Column("program_code", String(40), nullable=True),
    Column("kind", String(40), nullable=False),
    Column("stage", String(40), nullable=False),
    Column("reason", Text, nullable=False),
    Column("raised_sequence", Integer, nullable=True),
    Column("raised_at", UtcDateTime, nullable=False),
    Column("cleared_at", UtcDateTime, nullable=True),
)
Index(
    "ix_workflows_attention_items_open",
    attention_items.c.application_id,
    attention_items.c.cleared_at,
)
Index("ix_workflows_attention_items_raised", attention_items.c.raised_at, attention_items.c.id)

attention_applications = Table(
    "workflows_attention_applications",
    metadata,
    Column("application_id", String(100), primary_key=True),
    Column("program_code", String(40), nullable=True),
    Column("sequence", Integer, nullable=False),
    Column("waiting", JSON, nullable=False),
    Column("status_at", UtcDateTime, nullable=True),
)


@dataclass(frozen=True)
class AttentionItem:
    id: int
    application_id: str
    program_code: str | None
    kind: str
    stage: str
    reason: str
    raised_at: datetime
    cleared_at: datetime | None


@dataclass(frozen=True)
class LastStatus:
    """The newest status event seen of an application (sequence 0: none yet)."""

    program_code: str | None
    sequence: int
    waiting: list[str]
    at: datetime | None


class AttentionStore(Store):
    """The attention list's queries, within one unit of work."""

    async def lock_status(self, application_id: str, program_code: str | None) -> LastStatus:
        """The application's last status, locked until the work ends (made if unknown).

        An escalation and a status event of one application arrive on two topics and may
        be handled at once by two consumers; the lock makes one wait for the other.
        """
        table = attention_applications
        query = (
            select(table.c.program_code, table.c.sequence, table.c.waiting, table.c.status_at)
            .where(table.c.application_id == application_id)
            .with_for_update()
        )
        row = await self._one(query)
        if row is not None:
            return LastStatus(row.program_code, row.sequence, list(row.waiting), row.status_at)
        await self.session.execute(
            insert(table).values(
                application_id=application_id,
                program_code=program_code,
                sequence=0,
                waiting=[],
                status_at=None,
            )
        )
        return LastStatus(program_code, 0, [], None)

    async def save_status(self, application_id: str, status: LastStatus) -> None:
        table = attention_applications
        await self.session.execute(
            update(table)
            .where(table.c.application_id == application_id)
            .values(
                program_code=status.program_code,
                sequence=status.sequence,
                waiting=status.waiting,
                status_at=status.at,
            )
        )

    async def add_item(
        self,
        *,
        application_id: str,
        program_code: str | None,
        kind: str,
        stage: str,
        reason: str,
        raised_sequence: int | None,
        raised_at: datetime,
        cleared_at: datetime | None,
    ) -> None:
        await self.session.execute(
            insert(attention_items).values(
                application_id=application_id,
                program_code=program_code,
                kind=kind,
                stage=stage,
                reason=reason,
                raised_sequence=raised_sequence,
                raised_at=raised_at,
                cleared_at=cleared_at,
            )
        )

    async def clear_resolved(
        self, application_id: str, *, sequence: int, waiting: Sequence[str], now: datetime
    ) -> int:
        """Clear the open items raised before status ``sequence`` whose kind is not waiting."""
        items = attention_items
        raised_before = (items.c.raised_sequence < sequence) | items.c.raised_sequence.is_(None)
        result = await self.session.execute(
            update(items)
            .where(
                items.c.application_id == application_id,
                items.c.cleared_at.is_(None),
                items.c.kind.not_in(list(waiting)),
                raised_before,
            )
            .values(cleared_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def items(
        self,
        *,
        program_code: str | None,
        kind: str | None,
        include_cleared: bool,
        limit: int,
        offset: int,
    ) -> tuple[list[AttentionItem], int]:
        """A page of items, oldest first, and how many match in all."""
        table = attention_items
        conditions = set_in_filter((table.c.program_code, program_code), (table.c.kind, kind))
        if not include_cleared:
            conditions.append(table.c.cleared_at.is_(None))
        rows, total = await self._page(
            table,
            *conditions,
            order_by=[table.c.raised_at, table.c.id],
            limit=limit,
            offset=offset,
        )
        return [
            AttentionItem(
                id=row.id,
                application_id=row.application_id,
                program_code=row.program_code,
                kind=row.kind,
                stage=row.stage,
                reason=row.reason,
                raised_at=row.raised_at,
                cleared_at=row.cleared_at,
            )
            for row in rows
        ], total
