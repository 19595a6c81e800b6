"""Tables of the reporting service (migrated by services/reporting/migrations) and every query.

Two groups of tables:
- report obligations and their reviews: the applicants' reports, the state they are in;
- the analytics read model: facts keyed by business keys, and one summary per application
  computed from its facts (``analytics.summarize``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.analytics import ApplicationSummary, Fact, fact_data_text, summarize
from shared.messaging.tables import define_messaging_tables

metadata = MetaData()
messaging = define_messaging_tables(metadata, "reporting")

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_Id = BigInteger().with_variant(Integer(), "sqlite")

reports = Table(
    "reporting_reports",
    metadata,
    Column("report_id", String(128), primary_key=True),
    Column("application_id", String(255), nullable=False),
    Column("member_id", String(255), nullable=False),
    Column("program_code", String(64), nullable=True),
    Column("state", String(32), nullable=False),
    Column("due_on", Date, nullable=True),
    Column("reminders_at", Text, nullable=False, server_default="[]"),
    Column("budget_lines", Text, nullable=False, server_default="[]"),
    Column("awarded_minor", BigInteger, nullable=True),
    Column("awarded_currency", String(3), nullable=True),
    # Null while only an overdue notice has been seen (it may overtake the request).
    Column("requested_at", DateTime(timezone=True), nullable=True),
    Column("draft", Text, nullable=True),
    Column("submitted", Text, nullable=True),
    Column("revision", Integer, nullable=False, server_default="0"),
    Column("first_submitted_at", DateTime(timezone=True), nullable=True),
    Column("submitted_at", DateTime(timezone=True), nullable=True),
    Column("actual_spending_minor", BigInteger, nullable=True),
    Column("overdue_since", Date, nullable=True),
    Column("standing_lost", Boolean, nullable=False, server_default=false()),
    Column("correlation_id", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_reporting_reports_member", reports.c.member_id, reports.c.due_on)

report_reviews = Table(
    "reporting_report_reviews",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("report_id", String(128), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("reviewer_id", String(255), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("comments", Text, nullable=False),
    Column("reviewed_at", DateTime(timezone=True), nullable=False),
)
Index("ix_reporting_report_reviews_report", report_reviews.c.report_id)

facts = Table(
    "reporting_facts",
    metadata,
    Column("application_id", String(255), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("ref", String(255), primary_key=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("data", Text, nullable=False),
)

summaries = Table(
    "reporting_app_summaries",
    metadata,
    Column("application_id", String(255), primary_key=True),
    Column("program_code", String(64), nullable=False),
    Column("cycle", String(32), nullable=False),
    Column("focus_area", String(64), nullable=False),
    Column("partner_country", String(8), nullable=False),
    Column("member_id", String(255), nullable=False),
    Column("summary", Text, nullable=False),
)
Index("ix_reporting_app_summaries_program", summaries.c.program_code, summaries.c.cycle)

ANALYTICS_CONSUMER = "reporting.analytics"


# --- reports -----------------------------------------------------------------------------


async def get_report(
    session: AsyncSession, report_id: str, *, for_update: bool = False
) -> Row[Any] | None:
    query = select(reports).where(reports.c.report_id == report_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).first()


async def list_reports(
    session: AsyncSession,
    *,
    member_id: str | None,
    application_id: str | None,
    state: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Row[Any]], int]:
    conditions = []
    if member_id is not None:
        conditions.append(reports.c.member_id == member_id)
    if application_id is not None:
        conditions.append(reports.c.application_id == application_id)
    if state is not None:
        conditions.append(reports.c.state == state)
    total = await session.scalar(select(func.count()).select_from(reports).where(*conditions))
    rows = (
        await session.execute(
            select(reports)
            .where(*conditions)
            .order_by(reports.c.due_on.is_(None), reports.c.due_on, reports.c.report_id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return list(rows), int(total or 0)


async def insert_report(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(reports).values(**values))


async def update_report(session: AsyncSession, report_id: str, **values: Any) -> None:
    await session.execute(update(reports).where(reports.c.report_id == report_id).values(**values))


async def reviews_of(session: AsyncSession, report_ids: Sequence[str]) -> dict[str, list[Row[Any]]]:
    found: dict[str, list[Row[Any]]] = {report_id: [] for report_id in report_ids}
    if not report_ids:
        return found
    rows = (
        await session.execute(
            select(report_reviews)
            .where(report_reviews.c.report_id.in_(report_ids))
            .order_by(report_reviews.c.reviewed_at, report_reviews.c.id)
        )
    ).all()
    for row in rows:
        found[row.report_id].append(row)
    return found


async def add_review(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(report_reviews).values(**values))


async def other_reports_costing_standing(
    session: AsyncSession, member_id: str, report_id: str
) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(reports)
        .where(
            reports.c.member_id == member_id,
            reports.c.report_id != report_id,
            reports.c.standing_lost.is_(True),
        )
    )
    return int(count or 0)


# --- analytics ---------------------------------------------------------------------------


def _insert_keeping_earliest(session: AsyncSession) -> Any:
    """Insert a fact; for a key already known keep the earliest version, whatever the order.

    A result re-sent under a new event id is the same fact, possibly with a later time;
    keeping the smallest (occurred_at, data) makes the outcome independent of arrival order.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(facts)
    elif dialect == "sqlite":
        statement = sqlite.insert(facts)
    else:
        raise NotImplementedError(f"no upsert for {dialect}")
    new = statement.excluded
    new_data: Any = new.data
    old_data: Any = facts.c.data
    if dialect == "postgresql":  # compare as Python does: by code point, not by locale
        new_data, old_data = new_data.collate("C"), old_data.collate("C")
    return statement.on_conflict_do_update(
        index_elements=[facts.c.application_id, facts.c.kind, facts.c.ref],
        set_={"occurred_at": new.occurred_at, "data": new.data},
        where=or_(
            new.occurred_at < facts.c.occurred_at,
            and_(new.occurred_at == facts.c.occurred_at, new_data < old_data),
        ),
    )


async def add_facts(session: AsyncSession, new_facts: Iterable[Fact]) -> set[str]:
    """Store facts (a known key keeps its earliest version); return their applications."""
    new_facts_list = list(new_facts)
    rows = [
        {
            "application_id": fact.application_id,
            "kind": fact.kind,
            "ref": fact.ref,
            "occurred_at": fact.occurred_at.astimezone(UTC),
            "data": fact_data_text(fact.data),
        }
        for fact in new_facts_list
    ]
    if rows:
        await session.execute(_insert_keeping_earliest(session), rows)
    return {fact.application_id for fact in new_facts_list}


CHUNK = 500  # ids per IN (...) list


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


async def facts_of(session: AsyncSession, application_ids: Iterable[str]) -> dict[str, list[Fact]]:
    found: dict[str, list[Fact]] = {}
    for chunk in _chunks(sorted(set(application_ids))):
        rows = (await session.execute(select(facts).where(facts.c.application_id.in_(chunk)))).all()
        for row in rows:
            found.setdefault(row.application_id, []).append(
                Fact(
                    row.application_id,
                    row.kind,
                    row.ref,
                    _aware(row.occurred_at),
                    json.loads(row.data),
                )
            )
    return found


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for what was stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def refresh_summaries(session: AsyncSession, application_ids: Iterable[str]) -> None:
    """Recompute the summaries of these applications from their facts."""
    wanted = sorted(set(application_ids))
    if not wanted:
        return
    known = await facts_of(session, wanted)
    rows = []
    for application_id in wanted:
        summary = summarize(application_id, known.get(application_id, []))
        rows.append(
            {
                "application_id": application_id,
                "program_code": summary.program_code,
                "cycle": summary.cycle,
                "focus_area": summary.focus_area,
                "partner_country": summary.partner_country,
                "member_id": summary.member_id,
                "summary": summary.model_dump_json(),
            }
        )
    for chunk in _chunks(wanted):
        await session.execute(delete(summaries).where(summaries.c.application_id.in_(chunk)))
    await session.execute(insert(summaries), rows)


@dataclass(frozen=True)
class SummaryFilter:
    program: str | None = None
    cycle: str | None = None
    focus_area: str | None = None
    partner_country: str | None = None
    member_id: str | None = None


async def load_summaries(
    session: AsyncSession, where: SummaryFilter = SummaryFilter()
) -> list[ApplicationSummary]:
    conditions = []
    for column, value in (
        (summaries.c.program_code, where.program),
        (summaries.c.cycle, where.cycle),
        (summaries.c.focus_area, where.focus_area),
        (summaries.c.partner_country, where.partner_country),
        (summaries.c.member_id, where.member_id),
    ):
        if value is not None:
            conditions.append(column == value)
    rows = (
        await session.execute(
            select(summaries.c.summary).where(*conditions).order_by(summaries.c.application_id)
        )
    ).all()
    return [ApplicationSummary.model_validate_json(row.summary) for row in rows]


async def clear_analytics(session: AsyncSession) -> None:
    """Empty the read model, and forget which events fed it, before a rebuild."""
    await session.execute(delete(summaries))
    await session.execute(delete(facts))
    await session.execute(
        delete(messaging.inbox).where(messaging.inbox.c.consumer == ANALYTICS_CONSUMER)
    )


async def unseen(session: AsyncSession, event_ids: Sequence[str]) -> set[str]:
    """The event ids the analytics inbox has not recorded yet."""
    inbox = messaging.inbox
    seen: set[str] = set()
    for chunk in _chunks(sorted(set(event_ids))):
        seen |= set(
            (
                await session.scalars(
                    select(inbox.c.event_id).where(
                        inbox.c.event_id.in_(chunk), inbox.c.consumer == ANALYTICS_CONSUMER
                    )
                )
            ).all()
        )
    return set(event_ids) - seen


async def record_seen(
    session: AsyncSession, events: Sequence[tuple[str, str]], at: datetime
) -> None:
    """Record ``(event_id, topic)`` pairs in the analytics inbox."""
    if events:
        await session.execute(
            insert(messaging.inbox),
            [
                {
                    "event_id": event_id,
                    "consumer": ANALYTICS_CONSUMER,
                    "topic": topic,
                    "processed_at": at,
                }
                for event_id, topic in events
            ],
        )
