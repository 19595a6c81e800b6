"""Tables of the review service (migrated by services/review/migrations) and every query.

Reviewers, review requests (one per application and round, or per report review), the
tasks that fill a request's slots, submitted reviews, recusals, handled command ids and
the mail queue. Use cases get typed rows from here and never build SQL themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
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

from services.review.domain import Candidate, TaskKind, TaskStatus, TaskTimes
from shared.contracts.programs import Rubric
from shared.messaging.tables import define_messaging_tables

metadata = MetaData()
messaging = define_messaging_tables(metadata, "review")

_Id = BigInteger().with_variant(Integer(), "sqlite")

reviewers = Table(
    "review_reviewers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("home_city", String(120), nullable=False),
    Column("home_country", String(2), nullable=True),
    Column("programs", JSON, nullable=False),
    Column("focus_areas", JSON, nullable=False),
    Column("regions", JSON, nullable=False),
    Column("languages", JSON, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("conflict_members", JSON, nullable=False),
    Column("conflict_cities", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

requests = Table(
    "review_requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("command_id", String(200), nullable=False, unique=True),
    Column("application_id", String(64), nullable=False),
    Column("round", Integer, nullable=False),
    Column("report_id", String(64), nullable=True),
    Column("member_id", String(64), nullable=False),
    Column("member_city", String(120), nullable=True),
    Column("program_code", String(64), nullable=False),
    Column("focus_area", String(64), nullable=True),
    Column("partner_city", String(120), nullable=True),
    Column("partner_country", String(2), nullable=True),
    Column("blind_review", Boolean, nullable=False),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("requested", JSON, nullable=True),
    Column("rubric", JSON, nullable=False),
    Column("reviews_needed", Integer, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    # Report reviews: the report under review (a ReportView), newest revision received.
    Column("report", JSON, nullable=True),
    UniqueConstraint("kind", "application_id", "round", name="uq_review_requests_round"),
)

# Post-exchange reports as reporting published them, one row per revision: a report may
# arrive before or after the workflow asks for its review.
reports = Table(
    "review_reports",
    metadata,
    Column("report_id", String(64), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("application_id", String(64), nullable=False),
    Column("report", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

tasks = Table(
    "review_tasks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("request_id", String(36), ForeignKey("review_requests.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("application_id", String(64), nullable=False),
    Column("round", Integer, nullable=False),
    Column("report_id", String(64), nullable=True),
    Column("slot", Integer, nullable=False),
    Column("reviewer_id", String(64), ForeignKey("review_reviewers.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("remind_at", DateTime(timezone=True), nullable=False),
    Column("reminded_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
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
    Column("kind", String(16), nullable=False),
    Column("scores", JSON, nullable=False),
    Column("weighted_total_bp", Integer, nullable=False),
    Column("recommendation", String(32), nullable=False),
    Column("comments", Text, nullable=False),
    Column("attested_no_conflict", Boolean, nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
)
Index("ix_review_reviews_application", reviews.c.application_id)

recusals = Table(
    "review_recusals",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("task_id", String(36), nullable=False, unique=True),
    Column("reviewer_id", String(64), nullable=False),
    Column("application_id", String(64), nullable=False),
    Column("member_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
Index("ix_review_recusals_application", recusals.c.application_id)

commands = Table(
    "review_commands",
    metadata,
    Column("command_id", String(200), primary_key=True),
    Column("topic", String(255), nullable=False),
    Column("handled_at", DateTime(timezone=True), nullable=False),
)

mail = Table(
    "review_mail",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("recipients", JSON, nullable=False),
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("application_id", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
)
Index("ix_review_mail_unsent", mail.c.sent_at, mail.c.id)


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _maybe_aware(moment: datetime | None) -> datetime | None:
    return aware(moment) if moment is not None else None


# ---------------------------------------------------------------- reviewers


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
    def from_row(cls, row: Any) -> ReviewerRow:
        return cls(
            id=row.id,
            name=row.name,
            email=row.email,
            home_city=row.home_city,
            home_country=row.home_country,
            programs=list(row.programs),
            focus_areas=list(row.focus_areas),
            regions=list(row.regions),
            languages=list(row.languages),
            capacity=row.capacity,
            active=row.active,
            conflict_members=list(row.conflict_members),
            conflict_cities=list(row.conflict_cities),
            created_at=aware(row.created_at),
            updated_at=aware(row.updated_at),
        )

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


async def add_reviewer(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(reviewers).values(**values))


async def update_reviewer(session: AsyncSession, reviewer_id: str, values: dict[str, Any]) -> None:
    await session.execute(update(reviewers).where(reviewers.c.id == reviewer_id).values(**values))


async def get_reviewer(session: AsyncSession, reviewer_id: str) -> ReviewerRow | None:
    row = (await session.execute(select(reviewers).where(reviewers.c.id == reviewer_id))).first()
    return ReviewerRow.from_row(row) if row else None


async def list_reviewers(session: AsyncSession, active: bool | None = None) -> list[ReviewerRow]:
    query = select(reviewers).order_by(reviewers.c.id)
    if active is not None:
        query = query.where(reviewers.c.active == active)
    return [ReviewerRow.from_row(row) for row in (await session.execute(query)).all()]


async def existing_reviewer_ids(session: AsyncSession, ids: Sequence[str]) -> set[str]:
    found = await session.scalars(select(reviewers.c.id).where(reviewers.c.id.in_(list(ids))))
    return set(found)


async def open_task_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(tasks.c.reviewer_id, func.count())
        .where(tasks.c.status == TaskStatus.OPEN)
        .group_by(tasks.c.reviewer_id)
    )
    return {reviewer_id: int(count) for reviewer_id, count in rows.all()}


async def lock_reviewers(session: AsyncSession) -> tuple[list[ReviewerRow], dict[str, int]]:
    """Every reviewer and its open workload, locked until the transaction ends.

    The lock (PostgreSQL; SQLite serialises writers anyway) keeps two concurrent
    assignments from both seeing the same free capacity.
    """
    rows = (
        await session.execute(select(reviewers).order_by(reviewers.c.id).with_for_update())
    ).all()
    return [ReviewerRow.from_row(row) for row in rows], await open_task_counts(session)


# ---------------------------------------------------------------- requests


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

    @classmethod
    def from_row(cls, row: Any) -> RequestRow:
        return cls(
            id=row.id,
            kind=TaskKind(row.kind),
            command_id=row.command_id,
            application_id=row.application_id,
            round=row.round,
            report_id=row.report_id,
            member_id=row.member_id,
            member_city=row.member_city,
            program_code=row.program_code,
            focus_area=row.focus_area,
            partner_city=row.partner_city,
            partner_country=row.partner_country,
            blind_review=row.blind_review,
            title=row.title,
            summary=row.summary,
            requested=row.requested,
            rubric=Rubric.model_validate(row.rubric),
            reviews_needed=row.reviews_needed,
            due_at=aware(row.due_at),
            received_at=aware(row.received_at),
            correlation_id=row.correlation_id,
            report=row.report,
        )


async def add_request(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(requests).values(**values))


async def get_request(session: AsyncSession, request_id: str) -> RequestRow | None:
    row = (await session.execute(select(requests).where(requests.c.id == request_id))).first()
    return RequestRow.from_row(row) if row else None


async def find_request(
    session: AsyncSession, *, command_id: str, kind: TaskKind, application_id: str, round: int
) -> RequestRow | None:
    """The request this command already created: same command id, or same round."""
    row = (
        await session.execute(
            select(requests).where(
                (requests.c.command_id == command_id)
                | and_(
                    requests.c.kind == kind,
                    requests.c.application_id == application_id,
                    requests.c.round == round,
                )
            )
        )
    ).first()
    return RequestRow.from_row(row) if row else None


async def report_requests(session: AsyncSession, application_id: str) -> list[RequestRow]:
    rows = await session.execute(
        select(requests)
        .where(requests.c.kind == TaskKind.REPORT, requests.c.application_id == application_id)
        .order_by(requests.c.round)
    )
    return [RequestRow.from_row(row) for row in rows.all()]


async def requests_for_report(session: AsyncSession, report_id: str) -> list[RequestRow]:
    rows = await session.execute(
        select(requests).where(requests.c.report_id == report_id).order_by(requests.c.round)
    )
    return [RequestRow.from_row(row) for row in rows.all()]


async def show_report(session: AsyncSession, request_id: str, report: dict[str, Any]) -> None:
    await session.execute(update(requests).where(requests.c.id == request_id).values(report=report))


async def save_report(
    session: AsyncSession,
    *,
    report_id: str,
    revision: int,
    application_id: str,
    report: dict[str, Any],
    at: datetime,
) -> bool:
    """Keep one revision of a report; False if it was kept already."""
    known = await session.scalar(
        select(reports.c.revision).where(
            reports.c.report_id == report_id, reports.c.revision == revision
        )
    )
    if known is not None:
        return False
    await session.execute(
        insert(reports).values(
            report_id=report_id,
            revision=revision,
            application_id=application_id,
            report=report,
            received_at=at,
        )
    )
    return True


async def latest_report(session: AsyncSession, report_id: str) -> dict[str, Any] | None:
    found = await session.scalar(
        select(reports.c.report)
        .where(reports.c.report_id == report_id)
        .order_by(reports.c.revision.desc())
        .limit(1)
    )
    return dict(found) if found is not None else None


async def latest_application_request(
    session: AsyncSession, application_id: str
) -> RequestRow | None:
    row = (
        await session.execute(
            select(requests)
            .where(
                requests.c.kind == TaskKind.APPLICATION,
                requests.c.application_id == application_id,
            )
            .order_by(requests.c.round.desc())
            .limit(1)
        )
    ).first()
    return RequestRow.from_row(row) if row else None


async def request_by_round(
    session: AsyncSession, application_id: str, round: int
) -> RequestRow | None:
    row = (
        await session.execute(
            select(requests).where(
                requests.c.kind == TaskKind.APPLICATION,
                requests.c.application_id == application_id,
                requests.c.round == round,
            )
        )
    ).first()
    return RequestRow.from_row(row) if row else None


async def application_requests(session: AsyncSession, application_id: str) -> list[RequestRow]:
    rows = await session.execute(
        select(requests)
        .where(requests.c.application_id == application_id)
        .order_by(requests.c.kind, requests.c.round)
    )
    return [RequestRow.from_row(row) for row in rows.all()]


# ---------------------------------------------------------------- commands


async def command_seen(session: AsyncSession, command_id: str) -> bool:
    found = await session.scalar(
        select(commands.c.command_id).where(commands.c.command_id == command_id)
    )
    return found is not None


async def record_command(
    session: AsyncSession, command_id: str, topic: str, handled_at: datetime
) -> None:
    await session.execute(
        insert(commands).values(command_id=command_id, topic=topic, handled_at=handled_at)
    )


# ---------------------------------------------------------------- tasks


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
    def from_row(cls, row: Any) -> TaskRow:
        return cls(
            id=row.id,
            request_id=row.request_id,
            kind=TaskKind(row.kind),
            application_id=row.application_id,
            round=row.round,
            report_id=row.report_id,
            slot=row.slot,
            reviewer_id=row.reviewer_id,
            status=TaskStatus(row.status),
            assigned_at=aware(row.assigned_at),
            due_at=aware(row.due_at),
            remind_at=aware(row.remind_at),
            reminded_at=_maybe_aware(row.reminded_at),
            closed_at=_maybe_aware(row.closed_at),
            close_reason=row.close_reason,
            replaces_task_id=row.replaces_task_id,
        )


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


async def add_task(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(tasks).values(**values))


async def get_task(session: AsyncSession, task_id: str, *, lock: bool = False) -> TaskRow | None:
    query = select(tasks).where(tasks.c.id == task_id)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return TaskRow.from_row(row) if row else None


async def close_task(
    session: AsyncSession, task_id: str, status: TaskStatus, at: datetime, reason: str | None
) -> None:
    await session.execute(
        update(tasks)
        .where(tasks.c.id == task_id)
        .values(status=status, closed_at=at, close_reason=reason)
    )


async def request_tasks(session: AsyncSession, request_id: str) -> list[TaskRow]:
    rows = await session.execute(
        select(tasks)
        .where(tasks.c.request_id == request_id)
        .order_by(tasks.c.slot, tasks.c.assigned_at, tasks.c.id)
    )
    return [TaskRow.from_row(row) for row in rows.all()]


async def find_tasks(session: AsyncSession, where: TaskFilter) -> list[tuple[TaskRow, RequestRow]]:
    """Tasks with their requests, soonest due first."""
    query = select(tasks, requests).join(requests, tasks.c.request_id == requests.c.id)
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
    result = []
    for row in (await session.execute(query)).all():
        mapping = row._mapping
        task = TaskRow.from_row(_Columns({c.name: mapping[c] for c in tasks.c}))
        request = RequestRow.from_row(_Columns({c.name: mapping[c] for c in requests.c}))
        result.append((task, request))
    return result


class _Columns:
    """Attribute access over one table's columns of a joined row."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


async def excluded_reviewers(
    session: AsyncSession, request_id: str, application_id: str
) -> set[str]:
    """Reviewers who held a task of this request or recused on this application."""
    held = await session.scalars(
        select(tasks.c.reviewer_id).where(tasks.c.request_id == request_id)
    )
    recused = await session.scalars(
        select(recusals.c.reviewer_id).where(recusals.c.application_id == application_id)
    )
    return set(held) | set(recused)


async def tasks_to_remind(session: AsyncSession, now: datetime, limit: int = 100) -> list[TaskRow]:
    rows = await session.execute(
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
    return [TaskRow.from_row(row) for row in rows.all()]


async def mark_reminded(session: AsyncSession, task_id: str, at: datetime) -> None:
    await session.execute(update(tasks).where(tasks.c.id == task_id).values(reminded_at=at))


# ---------------------------------------------------------------- reviews and recusals


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
    def from_row(cls, row: Any) -> ReviewRow:
        return cls(
            task_id=row.task_id,
            reviewer_id=row.reviewer_id,
            application_id=row.application_id,
            round=row.round,
            kind=TaskKind(row.kind),
            scores={str(name): int(score) for name, score in row.scores.items()},
            weighted_total_bp=row.weighted_total_bp,
            recommendation=row.recommendation,
            comments=row.comments,
            attested_no_conflict=row.attested_no_conflict,
            submitted_at=aware(row.submitted_at),
        )


async def add_review(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(reviews).values(**values))


async def get_review(session: AsyncSession, task_id: str) -> ReviewRow | None:
    row = (await session.execute(select(reviews).where(reviews.c.task_id == task_id))).first()
    return ReviewRow.from_row(row) if row else None


async def application_reviews(session: AsyncSession, application_id: str) -> list[ReviewRow]:
    rows = await session.execute(
        select(reviews)
        .where(reviews.c.application_id == application_id)
        .order_by(reviews.c.kind, reviews.c.round, reviews.c.submitted_at, reviews.c.task_id)
    )
    return [ReviewRow.from_row(row) for row in rows.all()]


async def add_recusal(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(recusals).values(**values))


async def reviewer_recusals(session: AsyncSession, reviewer_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(recusals)
        .where(recusals.c.reviewer_id == reviewer_id)
        .order_by(recusals.c.recorded_at, recusals.c.id)
    )
    return [
        {
            "task_id": row.task_id,
            "application_id": row.application_id,
            "reason": row.reason,
            "recorded_at": aware(row.recorded_at),
        }
        for row in rows.all()
    ]


# ---------------------------------------------------------------- workload


async def task_times(session: AsyncSession) -> list[TaskTimes]:
    rows = await session.execute(
        select(
            tasks.c.reviewer_id,
            tasks.c.status,
            tasks.c.assigned_at,
            tasks.c.due_at,
            tasks.c.closed_at,
        )
    )
    return [
        TaskTimes(
            row.reviewer_id,
            TaskStatus(row.status),
            aware(row.assigned_at),
            aware(row.due_at),
            _maybe_aware(row.closed_at),
        )
        for row in rows.all()
    ]


# ---------------------------------------------------------------- mail


@dataclass(frozen=True)
class MailRow:
    id: int
    recipients: list[str]
    subject: str
    body: str
    application_id: str | None


async def queue_mail(
    session: AsyncSession,
    *,
    recipients: Sequence[str],
    subject: str,
    body: str,
    application_id: str | None,
    at: datetime,
) -> None:
    await session.execute(
        insert(mail).values(
            recipients=list(recipients),
            subject=subject[:300],
            body=body,
            application_id=application_id,
            created_at=at,
        )
    )


async def unsent_mail(
    session: AsyncSession, *, max_attempts: int = 10, limit: int = 50
) -> list[MailRow]:
    """Mail not sent yet, oldest first; a message that failed ``max_attempts`` times stays."""
    rows = await session.execute(
        select(mail)
        .where(mail.c.sent_at.is_(None), mail.c.attempts < max_attempts)
        .order_by(mail.c.id)
        .limit(limit)
    )
    return [
        MailRow(row.id, list(row.recipients), row.subject, row.body, row.application_id)
        for row in rows.all()
    ]


async def mark_mail_sent(session: AsyncSession, mail_id: int, at: datetime) -> None:
    await session.execute(update(mail).where(mail.c.id == mail_id).values(sent_at=at))


async def mark_mail_failed(session: AsyncSession, mail_id: int, error: str) -> None:
    await session.execute(
        update(mail)
        .where(mail.c.id == mail_id)
        .values(attempts=mail.c.attempts + 1, last_error=error[:2000])
    )
