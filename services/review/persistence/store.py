"""Every query of the review service: ``ReviewStore``, over one unit of work's session.

Use cases get typed rows (``records``) from it and never build SQL themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update

from services.review.domain import TaskKind, TaskStatus, TaskTimes
from services.review.persistence.records import (
    RecusalRow,
    RequestRow,
    ReviewerRow,
    ReviewRow,
    TaskFilter,
    TaskRecord,
    TaskRow,
)
from services.review.persistence.tables import (
    recusals,
    reports,
    requests,
    reviewers,
    reviews,
    tasks,
)
from shared.persistence import Store


class ReviewStore(Store):
    """The queries of one unit of work."""

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
