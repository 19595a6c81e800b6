"""Tables of the review service (migrated by services/review/migrations) and every query.

Reviewers, review requests (one per application and round, or per report review), the
tasks that fill a request's slots, submitted reviews and recusals. Use cases get typed
rows from ``ReviewStore`` and never build SQL themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.review.domain import Candidate, TaskKind, TaskStatus, TaskTimes, answers_subject
from shared.contracts.base import NOT_A_CONTRACT_FIELD
from shared.contracts.programs import Rubric
from shared.db import Id, UtcDateTime
from shared.messaging.tables import define_messaging_tables

metadata = MetaData()
messaging = define_messaging_tables(metadata, "review")

reviewers = Table(
    "review_reviewers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, info=NOT_A_CONTRACT_FIELD),
    Column("email", String(320), nullable=False),
    Column("home_city", String(200), nullable=False),
    Column("home_country", String(2), nullable=True),
    Column("programs", JSON, nullable=False),
    Column("focus_areas", JSON, nullable=False),
    Column("regions", JSON, nullable=False),
    Column("languages", JSON, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("conflict_members", JSON, nullable=False),
    Column("conflict_cities", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

requests = Table(
    "review_requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False, info=NOT_A_CONTRACT_FIELD),
    Column("command_id", String(200), nullable=False, unique=True),
    Column("application_id", String(64), nullable=False),
    Column("round", Integer, nullable=False),
    Column("report_id", String(128), nullable=True),
    Column("member_id", String(64), nullable=False),
    Column("member_city", String(200), nullable=True),
    Column("program_code", String(64), nullable=False),
    Column("focus_area", String(64), nullable=True),
    Column("partner_city", String(200), nullable=True),
    Column("partner_country", String(2), nullable=True),
    Column("blind_review", Boolean, nullable=False),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("requested", JSON, nullable=True),
    Column("rubric", JSON, nullable=False),
    Column("reviews_needed", Integer, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("correlation_id", String(64), nullable=False),
    # Report reviews: the report under review (a ReportView), newest revision received.
    Column("report", JSON, nullable=True),
    # Application reviews: the plan and its money (an ApplicationForReview).
    Column("application", JSON, nullable=True),
    UniqueConstraint("kind", "application_id", "round", name="uq_review_requests_round"),
)

# Post-exchange reports as reporting published them, one row per revision: a report may
# arrive before or after the workflow asks for its review.
reports = Table(
    "review_reports",
    metadata,
    Column("report_id", String(128), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("application_id", String(64), nullable=False),
    Column("report", JSON, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
)

tasks = Table(
    "review_tasks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("request_id", String(36), ForeignKey("review_requests.id"), nullable=False),
    Column("kind", String(16), nullable=False, info=NOT_A_CONTRACT_FIELD),
    Column("application_id", String(64), nullable=False),
    Column("round", Integer, nullable=False),
    Column("report_id", String(128), nullable=True),
    Column("slot", Integer, nullable=False),
    Column("reviewer_id", String(64), ForeignKey("review_reviewers.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("assigned_at", UtcDateTime, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("remind_at", UtcDateTime, nullable=False),
    Column("reminded_at", UtcDateTime, nullable=True),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("close_reason", Text, nullable=True),
    Column("replaces_task_id", String(36), nullable=True),
    UniqueConstraint("request_id", "reviewer_id", name="uq_review_tasks_reviewer"),
)
Index("ix_review_tasks_queue", tasks.c.reviewer_id, tasks.c.status, tasks.c.due_at)
Index("ix_review_tasks_application", tasks.c.application_id)
Index("ix_review_tasks_reminders", tasks.c.status, tasks.c.remind_at)

reviews = Table(
    "review_reviews",
    metadata,
    Column("task_id", String(36), ForeignKey("review_tasks.id"), primary_key=True),
    Column("reviewer_id", String(64), nullable=False),
    Column("application_id", String(64), nullable=False),
    Column("round", Integer, nullable=False),
    Column("kind", String(16), nullable=False, info=NOT_A_CONTRACT_FIELD),
    Column("scores", JSON, nullable=False),
    Column("weighted_total_bp", Integer, nullable=False),
    Column("recommendation", String(32), nullable=False),
    Column("comments", Text, nullable=False),
    Column("attested_no_conflict", Boolean, nullable=False),
    Column("submitted_at", UtcDateTime, nullable=False),
)
Index("ix_review_reviews_application", reviews.c.application_id)

recusals = Table(
    "review_recusals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("task_id", String(36), nullable=False, unique=True),
    Column("reviewer_id", String(64), nullable=False),
    Column("application_id", String(64), nullable=False),
    Column("member_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)
Index("ix_review_recusals_application", recusals.c.application_id)


# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class ReviewerRow:
    id: str
    name: str
    email: str
    home_city: str
    home_country: str | None
    programs: list[str]
    focus_areas: list[str]
    regions: list[str]
    languages: list[str]
    capacity: int
    active: bool
    conflict_members: list[str]
    conflict_cities: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> ReviewerRow:
        return cls(**row._mapping)

    def candidate(self, open_tasks: int) -> Candidate:
        return Candidate(
            reviewer_id=self.id,
            home_city=self.home_city,
            capacity=self.capacity,
            open_tasks=open_tasks,
            active=self.active,
            programs=frozenset(self.programs),
            focus_areas=frozenset(self.focus_areas),
            regions=frozenset(self.regions),
            conflict_members=frozenset(self.conflict_members),
            conflict_cities=frozenset(self.conflict_cities),
        )


@dataclass(frozen=True)
class RequestRow:
    id: str
    kind: TaskKind
    command_id: str
    application_id: str
    round: int
    report_id: str | None
    member_id: str
    member_city: str | None
    program_code: str
    focus_area: str | None
    partner_city: str | None
    partner_country: str | None
    blind_review: bool
    title: str
    summary: str
    requested: dict[str, Any] | None
    rubric: Rubric
    reviews_needed: int
    due_at: datetime
    received_at: datetime
    correlation_id: str
    report: dict[str, Any] | None
    application: dict[str, Any] | None

    @classmethod
    def of(cls, row: Any) -> RequestRow:
        values = dict(row._mapping)
        return cls(
            **values
            | {"kind": TaskKind(values["kind"]), "rubric": Rubric.model_validate(values["rubric"])}
        )

    @property
    def subject(self) -> str:
        """What every answer about this request is filed under."""
        return answers_subject(self.kind, self.application_id, self.round, self.report_id)


@dataclass(frozen=True)
class TaskRow:
    id: str
    request_id: str
    kind: TaskKind
    application_id: str
    round: int
    report_id: str | None
    slot: int
    reviewer_id: str
    status: TaskStatus
    assigned_at: datetime
    due_at: datetime
    remind_at: datetime
    reminded_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    replaces_task_id: str | None

    @classmethod
    def of(cls, row: Any) -> TaskRow:
        values = dict(row._mapping)
        return cls(
            **values | {"kind": TaskKind(values["kind"]), "status": TaskStatus(values["status"])}
        )


@dataclass(frozen=True)
class ReviewRow:
    task_id: str
    reviewer_id: str
    application_id: str
    round: int
    kind: TaskKind
    scores: dict[str, int]
    weighted_total_bp: int
    recommendation: str
    comments: str
    attested_no_conflict: bool
    submitted_at: datetime

    @classmethod
    def of(cls, row: Any) -> ReviewRow:
        values = dict(row._mapping)
        return cls(**values | {"kind": TaskKind(values["kind"])})


@dataclass(frozen=True)
class TaskRecord:
    """A task with the request it belongs to and, once submitted, its review."""

    task: TaskRow
    request: RequestRow
    review: ReviewRow | None = None


@dataclass(frozen=True)
class RecusalRow:
    task_id: str
    application_id: str
    reason: str
    recorded_at: datetime


@dataclass(frozen=True)
class TaskFilter:
    reviewer_id: str | None = None
    statuses: tuple[TaskStatus, ...] = ()
    kind: TaskKind | None = None
    application_id: str | None = None
    program_code: str | None = None
    due_before: datetime | None = None
    limit: int = 200
    offset: int = 0


# ---------------------------------------------------------------- the store


class ReviewStore:
    """The queries of one unit of work."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _one(self, query: Any) -> Any:
        return (await self.session.execute(query)).first()

    async def _all(self, query: Any) -> Sequence[Any]:
        return (await self.session.execute(query)).all()

    # Reviewers ---------------------------------------------------------------------------

    async def add_reviewer(self, values: dict[str, Any]) -> None:
        await self.session.execute(insert(reviewers).values(**values))

    async def update_reviewer(self, reviewer_id: str, values: dict[str, Any]) -> None:
        await self.session.execute(
            update(reviewers).where(reviewers.c.id == reviewer_id).values(**values)
        )

    async def reviewer(self, reviewer_id: str) -> ReviewerRow | None:
        row = await self._one(select(reviewers).where(reviewers.c.id == reviewer_id))
        return ReviewerRow.of(row) if row else None

    async def reviewers(
        self, active: bool | None = None, *, limit: int | None = None, offset: int = 0
    ) -> list[ReviewerRow]:
        query = select(reviewers).order_by(reviewers.c.id).limit(limit).offset(offset)
        if active is not None:
            query = query.where(reviewers.c.active == active)
        return [ReviewerRow.of(row) for row in await self._all(query)]

    async def open_task_counts(self) -> dict[str, int]:
        rows = await self._all(
            select(tasks.c.reviewer_id, func.count())
            .where(tasks.c.status == TaskStatus.OPEN)
            .group_by(tasks.c.reviewer_id)
        )
        return {reviewer_id: int(count) for reviewer_id, count in rows}

    async def lock_reviewers(self) -> tuple[list[ReviewerRow], dict[str, int]]:
        """Every reviewer and its open workload, locked until the transaction ends.

        The lock (PostgreSQL; SQLite serialises writers anyway) keeps two concurrent
        assignments from both seeing the same free capacity.
        """
        rows = await self._all(select(reviewers).order_by(reviewers.c.id).with_for_update())
        return [ReviewerRow.of(row) for row in rows], await self.open_task_counts()

    # Requests ----------------------------------------------------------------------------

    async def add_request(self, values: dict[str, Any]) -> RequestRow:
        await self.session.execute(insert(requests).values(**values))
        added = await self.request(values["id"])
        assert added is not None
        return added

    async def request(self, request_id: str) -> RequestRow | None:
        row = await self._one(select(requests).where(requests.c.id == request_id))
        return RequestRow.of(row) if row else None

    async def _requests(
        self, *where: Any, order: Sequence[Any], limit: int | None = None, offset: int = 0
    ) -> list[RequestRow]:
        query = select(requests).where(*where).order_by(*order).limit(limit).offset(offset)
        return [RequestRow.of(row) for row in await self._all(query)]

    async def round_request(
        self, application_id: str, round: int, *, command_id: str | None = None
    ) -> RequestRow | None:
        """The request of an application's review round (or the one ``command_id`` made)."""
        query = select(requests).where(
            and_(
                requests.c.kind == TaskKind.APPLICATION,
                requests.c.application_id == application_id,
                requests.c.round == round,
            )
            | (requests.c.command_id == command_id)
        )
        row = await self._one(query)
        return RequestRow.of(row) if row else None

    async def report_requests(self, application_id: str) -> list[RequestRow]:
        return await self._requests(
            requests.c.kind == TaskKind.REPORT,
            requests.c.application_id == application_id,
            order=[requests.c.round],
        )

    async def application_requests(
        self, application_id: str, *, limit: int | None = None, offset: int = 0
    ) -> list[RequestRow]:
        return await self._requests(
            requests.c.application_id == application_id,
            order=[requests.c.kind, requests.c.round],
            limit=limit,
            offset=offset,
        )

    async def widen_request(self, request_id: str, reviews_needed: int, due_at: datetime) -> None:
        await self.session.execute(
            update(requests)
            .where(requests.c.id == request_id)
            .values(reviews_needed=reviews_needed, due_at=due_at)
        )

    async def show_report(self, request_id: str, report: dict[str, Any]) -> None:
        await self.session.execute(
            update(requests).where(requests.c.id == request_id).values(report=report)
        )

    # Reports -----------------------------------------------------------------------------

    async def save_report(
        self,
        *,
        report_id: str,
        revision: int,
        application_id: str,
        report: dict[str, Any],
        at: datetime,
    ) -> bool:
        """Keep one revision of a report; False if it was kept already."""
        known = await self.session.scalar(
            select(reports.c.revision).where(
                reports.c.report_id == report_id, reports.c.revision == revision
            )
        )
        if known is not None:
            return False
        await self.session.execute(
            insert(reports).values(
                report_id=report_id,
                revision=revision,
                application_id=application_id,
                report=report,
                received_at=at,
            )
        )
        return True

    async def latest_report(self, report_id: str) -> dict[str, Any] | None:
        found = await self.session.scalar(
            select(reports.c.report)
            .where(reports.c.report_id == report_id)
            .order_by(reports.c.revision.desc())
            .limit(1)
        )
        return dict(found) if found is not None else None

    # Tasks -------------------------------------------------------------------------------

    async def add_task(self, values: dict[str, Any]) -> TaskRow:
        await self.session.execute(insert(tasks).values(**values))
        added = await self.task(values["id"])
        assert added is not None
        return added

    async def task(self, task_id: str, *, lock: bool = False) -> TaskRow | None:
        query = select(tasks).where(tasks.c.id == task_id)
        if lock:
            query = query.with_for_update()
        row = await self._one(query)
        return TaskRow.of(row) if row else None

    async def task_record(self, task: TaskRow) -> TaskRecord:
        request = await self.request(task.request_id)
        assert request is not None
        return TaskRecord(task, request, await self.review(task.id))

    async def close_task(
        self, task_id: str, status: TaskStatus, at: datetime, reason: str | None
    ) -> None:
        await self.session.execute(
            update(tasks)
            .where(tasks.c.id == task_id)
            .values(status=status, closed_at=at, close_reason=reason)
        )

    async def request_tasks(self, request_id: str) -> list[TaskRow]:
        rows = await self._all(
            select(tasks)
            .where(tasks.c.request_id == request_id)
            .order_by(tasks.c.slot, tasks.c.assigned_at, tasks.c.id)
        )
        return [TaskRow.of(row) for row in rows]

    async def has_review(self, request_id: str) -> bool:
        found = await self.session.scalar(
            select(tasks.c.id)
            .where(tasks.c.request_id == request_id, tasks.c.status == TaskStatus.COMPLETED)
            .limit(1)
        )
        return found is not None

    async def find_tasks(self, where: TaskFilter) -> list[TaskRecord]:
        """Tasks with their requests, soonest due first."""
        query = select(tasks).join(requests, tasks.c.request_id == requests.c.id)
        if where.reviewer_id is not None:
            query = query.where(tasks.c.reviewer_id == where.reviewer_id)
        if where.statuses:
            query = query.where(tasks.c.status.in_([status.value for status in where.statuses]))
        if where.kind is not None:
            query = query.where(tasks.c.kind == where.kind)
        if where.application_id is not None:
            query = query.where(tasks.c.application_id == where.application_id)
        if where.program_code is not None:
            query = query.where(requests.c.program_code == where.program_code)
        if where.due_before is not None:
            query = query.where(tasks.c.due_at < where.due_before)
        query = query.order_by(tasks.c.due_at, tasks.c.id).limit(where.limit).offset(where.offset)
        found = [TaskRow.of(row) for row in await self._all(query)]
        wanted = {task.request_id for task in found}
        by_id = {
            request.id: request
            for request in await self._requests(requests.c.id.in_(wanted), order=[])
        }
        return [TaskRecord(task, by_id[task.request_id]) for task in found]

    async def excluded_reviewers(self, request_id: str, application_id: str) -> set[str]:
        """Reviewers who held a task of this request or recused on this application."""
        held = await self.session.scalars(
            select(tasks.c.reviewer_id).where(tasks.c.request_id == request_id)
        )
        recused = await self.session.scalars(
            select(recusals.c.reviewer_id).where(recusals.c.application_id == application_id)
        )
        return set(held) | set(recused)

    async def tasks_to_remind(self, now: datetime, limit: int = 100) -> list[TaskRow]:
        rows = await self._all(
            select(tasks)
            .where(
                tasks.c.status == TaskStatus.OPEN,
                tasks.c.reminded_at.is_(None),
                tasks.c.remind_at <= now,
            )
            .order_by(tasks.c.remind_at, tasks.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [TaskRow.of(row) for row in rows]

    async def mark_reminded(self, task_id: str, at: datetime) -> None:
        await self.session.execute(
            update(tasks).where(tasks.c.id == task_id).values(reminded_at=at)
        )

    async def task_times(self, reviewer_ids: Sequence[str] | None = None) -> list[TaskTimes]:
        query = select(
            tasks.c.reviewer_id,
            tasks.c.status,
            tasks.c.assigned_at,
            tasks.c.due_at,
            tasks.c.closed_at,
        )
        if reviewer_ids is not None:
            query = query.where(tasks.c.reviewer_id.in_(reviewer_ids))
        rows = await self._all(query)
        return [TaskTimes(row.reviewer_id, TaskStatus(row.status), *row[2:]) for row in rows]

    # Reviews and recusals ----------------------------------------------------------------

    async def add_review(self, values: dict[str, Any]) -> None:
        await self.session.execute(insert(reviews).values(**values))

    async def review(self, task_id: str) -> ReviewRow | None:
        row = await self._one(select(reviews).where(reviews.c.task_id == task_id))
        return ReviewRow.of(row) if row else None

    async def application_reviews(self, application_id: str) -> list[ReviewRow]:
        rows = await self._all(
            select(reviews)
            .where(reviews.c.application_id == application_id)
            .order_by(reviews.c.kind, reviews.c.round, reviews.c.submitted_at, reviews.c.task_id)
        )
        return [ReviewRow.of(row) for row in rows]

    async def add_recusal(self, values: dict[str, Any]) -> None:
        await self.session.execute(insert(recusals).values(**values))

    async def reviewer_recusals(self, reviewer_id: str) -> list[RecusalRow]:
        rows = await self._all(
            select(
                recusals.c.task_id,
                recusals.c.application_id,
                recusals.c.reason,
                recusals.c.recorded_at,
            )
            .where(recusals.c.reviewer_id == reviewer_id)
            .order_by(recusals.c.recorded_at, recusals.c.id)
        )
        return [RecusalRow(**row._mapping) for row in rows]
