"""Tables of the reporting service (migrated by services/reporting/migrations) and every query.

Two groups of tables:
- report obligations and their reviews: the applicants' reports, the state they are in;
- the analytics read model: facts keyed by business keys, and one summary per application
  computed from its facts (``analytics.summaries.summarize``).

``ReportingStore`` holds every query, over the session of one unit of work.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
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

from services.reporting.analytics.facts import Fact, fact_data_text
from services.reporting.analytics.summaries import ApplicationSummary, summarize
from services.reporting.domain import Obligation, ReportDraft, ReportState
from shared.contracts.intake import BudgetLine
from shared.contracts.money import Money
from shared.db import Id, UtcDateTime
from shared.messaging.tables import define_messaging_tables
from shared.persistence import Store, set_in_filter

metadata = MetaData()
messaging = define_messaging_tables(metadata, "reporting")

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
    Column("requested_at", UtcDateTime, nullable=True),
    Column("draft", Text, nullable=True),
    Column("submitted", Text, nullable=True),
    Column("revision", Integer, nullable=False, server_default="0"),
    Column("first_submitted_at", UtcDateTime, nullable=True),
    Column("submitted_at", UtcDateTime, nullable=True),
    Column("actual_spending_minor", BigInteger, nullable=True),
    Column("overdue_since", Date, nullable=True),
    Column("standing_lost", Boolean, nullable=False, server_default=false()),
    Column("correlation_id", String(255), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_reporting_reports_member", reports.c.member_id, reports.c.due_on)

report_reviews = Table(
    "reporting_report_reviews",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("report_id", String(128), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("reviewer_id", String(255), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("comments", Text, nullable=False),
    Column("reviewed_at", UtcDateTime, nullable=False),
)
Index("ix_reporting_report_reviews_report", report_reviews.c.report_id)

facts = Table(
    "reporting_facts",
    metadata,
    Column("application_id", String(255), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("ref", String(255), primary_key=True),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("data", Text, nullable=False),
)

summaries = Table(
    "reporting_app_summaries",
    metadata,
    Column("application_id", String(255), primary_key=True),
    Column("program_code", String(64), nullable=False),
    Column("cycle", String(32), nullable=False),
    Column("focus_area", String(64), nullable=False),
    # Every partner's country: 'CA+MX' for a tri-lateral exchange.
    Column("partner_country", String(64), nullable=False),
    Column("member_id", String(255), nullable=False),
    Column("summary", Text, nullable=False),
)
Index("ix_reporting_app_summaries_program", summaries.c.program_code, summaries.c.cycle)

# The inbox name under which a rebuild notes the events it applied. The live consumer
# keeps its own (one per topic), which a rebuild leaves alone: forgetting it would let a
# redelivered obligation event change a report a second time.
REBUILD_CONSUMER = "reporting.rebuild"

CHUNK = 500  # ids per IN (...) list

ReportRow = Row[Any]
ReviewRow = Row[Any]


# What the stored columns of a report say ---------------------------------------------


def awarded_of(row: ReportRow) -> Money | None:
    if row.awarded_minor is None or row.awarded_currency is None:
        return None
    return Money(amount_minor=row.awarded_minor, currency=row.awarded_currency)


def budget_lines_of(row: ReportRow) -> list[BudgetLine]:
    return [BudgetLine.model_validate(line) for line in json.loads(row.budget_lines)]


def obligation_of(row: ReportRow) -> Obligation:
    return Obligation(
        report_id=row.report_id,
        application_id=row.application_id,
        member_id=row.member_id,
        state=ReportState(row.state),
        due_on=row.due_on,
        budget_lines=budget_lines_of(row),
        awarded=awarded_of(row),
        requested=row.requested_at is not None,
    )


def stored_draft(row: ReportRow) -> ReportDraft | None:
    return ReportDraft.model_validate_json(row.draft) if row.draft else None


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


@dataclass(frozen=True)
class ReportFilter:
    member_id: str | None = None
    application_id: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class SummaryFilter:
    program: str | None = None
    cycle: str | None = None
    focus_area: str | None = None
    partner_country: str | None = None
    member_id: str | None = None


class ReportingStore(Store):
    """The queries of one unit of work."""

    # Reports ------------------------------------------------------------------------------

    async def report(self, report_id: str, *, for_update: bool = False) -> ReportRow | None:
        query = select(reports).where(reports.c.report_id == report_id)
        if for_update:
            query = query.with_for_update()
        return await self._one(query)

    async def reports(
        self, where: ReportFilter, *, limit: int, offset: int
    ) -> tuple[list[ReportRow], int]:
        conditions = set_in_filter(
            (reports.c.member_id, where.member_id),
            (reports.c.application_id, where.application_id),
            (reports.c.state, where.state),
        )
        rows, total = await self._page(
            reports,
            *conditions,
            order_by=[reports.c.due_on.is_(None), reports.c.due_on, reports.c.report_id],
            limit=limit,
            offset=offset,
        )
        return list(rows), total

    async def add_report(self, **values: Any) -> None:
        await self.session.execute(insert(reports).values(**values))

    async def update_report(self, report_id: str, **values: Any) -> None:
        await self.session.execute(
            update(reports).where(reports.c.report_id == report_id).values(**values)
        )

    async def reviews_of(self, report_ids: Sequence[str]) -> dict[str, list[ReviewRow]]:
        found: dict[str, list[ReviewRow]] = {report_id: [] for report_id in report_ids}
        if not report_ids:
            return found
        rows = (
            await self.session.execute(
                select(report_reviews)
                .where(report_reviews.c.report_id.in_(report_ids))
                .order_by(report_reviews.c.reviewed_at, report_reviews.c.id)
            )
        ).all()
        for row in rows:
            found[row.report_id].append(row)
        return found

    async def add_review(self, **values: Any) -> None:
        await self.session.execute(insert(report_reviews).values(**values))

    async def other_reports_costing_standing(self, member_id: str, report_id: str) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(reports)
            .where(
                reports.c.member_id == member_id,
                reports.c.report_id != report_id,
                reports.c.standing_lost.is_(True),
            )
        )
        return int(count or 0)

    # Analytics ----------------------------------------------------------------------------

    async def record(self, new_facts: Iterable[Fact]) -> None:
        """Store facts (a known key keeps its earliest version) and refresh their summaries."""
        new = list(new_facts)
        if not new:
            return
        changed = sorted({fact.application_id for fact in new})
        await self._lock_applications(changed)
        await self.session.execute(
            self._insert_keeping_earliest(),
            [
                {
                    "application_id": fact.application_id,
                    "kind": fact.kind,
                    "ref": fact.ref,
                    "occurred_at": fact.occurred_at,
                    "data": fact_data_text(fact.data),
                }
                for fact in new
            ],
        )
        await self._refresh_summaries(changed)

    async def _lock_applications(self, application_ids: Sequence[str]) -> None:
        """Take the applications' summaries one writer at a time (in id order: no deadlock).

        Two transactions that each add a fact of one application would otherwise each
        summarize without the other's fact, and the later commit would lose one. SQLite
        needs no lock: every transaction there begins with ``BEGIN IMMEDIATE``.
        """
        if self.session.get_bind().dialect.name != "postgresql":
            return
        for application_id in application_ids:
            await self.session.execute(
                select(func.pg_advisory_xact_lock(func.hashtextextended(application_id, 0)))
            )

    def _insert_keeping_earliest(self) -> Any:
        """Insert a fact; for a key already known keep the earliest version, whatever the order.

        A result re-sent under a new event id is the same fact, possibly with a later time;
        keeping the smallest (occurred_at, data) makes the outcome independent of arrival order.
        """
        dialect = self.session.get_bind().dialect.name
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

    async def facts_of(self, application_ids: Iterable[str]) -> dict[str, list[Fact]]:
        found: dict[str, list[Fact]] = {}
        for chunk in _chunks(sorted(set(application_ids))):
            rows = (
                await self.session.execute(select(facts).where(facts.c.application_id.in_(chunk)))
            ).all()
            for row in rows:
                fact = Fact(
                    row.application_id, row.kind, row.ref, row.occurred_at, json.loads(row.data)
                )
                found.setdefault(row.application_id, []).append(fact)
        return found

    async def _refresh_summaries(self, application_ids: Sequence[str]) -> None:
        """Recompute the summaries of these applications from their facts."""
        known = await self.facts_of(application_ids)
        rows = []
        for application_id in application_ids:
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
        for chunk in _chunks(application_ids):
            await self.session.execute(
                delete(summaries).where(summaries.c.application_id.in_(chunk))
            )
        await self.session.execute(insert(summaries), rows)

    async def summaries(self, where: SummaryFilter = SummaryFilter()) -> list[ApplicationSummary]:
        conditions = set_in_filter(
            (summaries.c.program_code, where.program),
            (summaries.c.cycle, where.cycle),
            (summaries.c.focus_area, where.focus_area),
            (summaries.c.partner_country, where.partner_country),
            (summaries.c.member_id, where.member_id),
        )
        rows = (
            await self.session.execute(
                select(summaries.c.summary).where(*conditions).order_by(summaries.c.application_id)
            )
        ).all()
        return [ApplicationSummary.model_validate_json(row.summary) for row in rows]

    # Rebuild ------------------------------------------------------------------------------

    async def clear_analytics(self) -> None:
        """Empty the read model, and what an earlier rebuild noted, before a rebuild."""
        await self.session.execute(delete(summaries))
        await self.session.execute(delete(facts))
        inbox = messaging.inbox
        await self.session.execute(delete(inbox).where(inbox.c.consumer == REBUILD_CONSUMER))

    async def unseen_by_rebuild(self, event_ids: Sequence[str]) -> set[str]:
        """The event ids this rebuild has not applied yet."""
        inbox = messaging.inbox
        seen: set[str] = set()
        for chunk in _chunks(sorted(set(event_ids))):
            seen |= set(
                (
                    await self.session.scalars(
                        select(inbox.c.event_id).where(
                            inbox.c.event_id.in_(chunk), inbox.c.consumer == REBUILD_CONSUMER
                        )
                    )
                ).all()
            )
        return set(event_ids) - seen

    async def seen_by_rebuild(self, events: Sequence[tuple[str, str]], at: datetime) -> None:
        """Note ``(event_id, topic)`` pairs as applied by this rebuild."""
        if events:
            await self.session.execute(
                insert(messaging.inbox),
                [
                    {
                        "event_id": event_id,
                        "consumer": REBUILD_CONSUMER,
                        "topic": topic,
                        "processed_at": at,
                    }
                    for event_id, topic in events
                ],
            )
