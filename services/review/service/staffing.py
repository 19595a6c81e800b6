"""Staffing a request's slots, and answering about it: what every area of use cases shares.

A slot is one of the ``reviews_needed`` reviews of a request. It is staffed by an open or
completed task; a task recused or taken away leaves its slot empty for the next reviewer.
Every event about a request is an answer to the workflow's commands about it, filed under
the request's subject, so that a command sent again gets it again.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel

from services.review.domain import (
    ReviewedApplication,
    TaskKind,
    TaskStatus,
    choose_reviewers,
    empty_slots,
    ineligibility,
    reminder_at,
    replacement_due,
    withhold,
)
from services.review.persistence import RequestRow, ReviewerRow, ReviewStore, TaskRow
from shared.contracts.envelope import deterministic_id
from shared.contracts.review import ReviewersShort
from shared.contracts.topics import REVIEWERS_SHORT, Topic
from shared.errors import ConflictError, InvalidError
from shared.mail import Mail
from shared.service import Work

logger = logging.getLogger(__name__)

MAIL_TASK_ASSIGNED: Final = "review-task-assigned"
MAIL_TASK_REASSIGNED: Final = "review-task-reassigned"
MAIL_REMINDER: Final = "review-reminder"


@dataclass(frozen=True)
class Fill:
    assigned: list[tuple[int, str]]  # (slot, task id)
    staffed: int
    needed: int

    @property
    def short_by(self) -> int:
        return self.needed - self.staffed


def reviewed(request: RequestRow) -> ReviewedApplication:
    return ReviewedApplication(
        application_id=request.application_id,
        member_id=request.member_id,
        member_city=request.member_city,
        program_code=request.program_code,
        focus_area=request.focus_area,
        partner_city=request.partner_city,
        partner_country=request.partner_country,
    )


def mail_title(request: RequestRow) -> str:
    title = request.title
    if request.blind_review:
        title = withhold(title, (request.member_city, request.partner_city, request.member_id))
    return f"application {request.application_id} ({title})"


async def fill_slots(work: Work, store: ReviewStore, request: RequestRow) -> Fill:
    """Give every empty slot of ``request`` to the best eligible reviewer, if there is one."""
    rows, counts = await store.lock_reviewers()
    tasks = await store.request_tasks(request.id)
    empty = empty_slots(request.reviews_needed, tasks)
    if not empty:
        return Fill([], request.reviews_needed, request.reviews_needed)
    excluded = frozenset(await store.excluded_reviewers(request.id, request.application_id))
    candidates = [row.candidate(counts.get(row.id, 0)) for row in rows]
    assignment = choose_reviewers(reviewed(request), candidates, len(empty), excluded)
    by_id = {row.id: row for row in rows}
    assigned = []
    for slot, reviewer_id in zip(empty, assignment.reviewer_ids, strict=False):
        previous = [t for t in tasks if t.slot == slot]
        task = await assign(
            work,
            store,
            request,
            slot,
            by_id[reviewer_id],
            replaces=previous[-1].id if previous else None,
            refill=bool(previous),
        )
        assigned.append((slot, task.id))
    staffed = request.reviews_needed - len(empty) + len(assigned)
    return Fill(assigned, staffed, request.reviews_needed)


async def pick_one(store: ReviewStore, request: RequestRow, reviewer_id: str | None) -> ReviewerRow:
    """The named reviewer if it may take the request, else the best eligible one."""
    rows, counts = await store.lock_reviewers()
    by_id = {row.id: row for row in rows}
    candidates = [row.candidate(counts.get(row.id, 0)) for row in rows]
    excluded = frozenset(await store.excluded_reviewers(request.id, request.application_id))
    application = reviewed(request)
    if reviewer_id is not None:
        named = next((c for c in candidates if c.reviewer_id == reviewer_id), None)
        if named is None:
            raise InvalidError.at("reviewer_id", f"no reviewer {reviewer_id!r}")
        why_not = ineligibility(named, application, excluded)
        if why_not:
            raise ConflictError(f"{reviewer_id} may not review this: {why_not}")
        return by_id[reviewer_id]
    assignment = choose_reviewers(application, candidates, 1, excluded)
    if not assignment.reviewer_ids:
        raise ConflictError("no eligible reviewer is available for this application")
    return by_id[assignment.reviewer_ids[0]]


async def assign(
    work: Work,
    store: ReviewStore,
    request: RequestRow,
    slot: int,
    reviewer: ReviewerRow,
    *,
    replaces: str | None,
    refill: bool,
) -> TaskRow:
    """A task of ``slot`` for ``reviewer``, who is told by mail.

    A task of the first staffing is due with the request; one staffed later (``refill``)
    keeps that date if it is ahead, else gets a whole review period.
    """
    period = request.due_at - request.received_at
    due = replacement_due(work.now, request.due_at, period) if refill else request.due_at
    task_id = str(deterministic_id("review-task", request.id, reviewer.id))
    task = await store.add_task(
        {
            "id": task_id,
            "request_id": request.id,
            "kind": request.kind,
            "application_id": request.application_id,
            "round": request.round,
            "report_id": request.report_id,
            "slot": slot,
            "reviewer_id": reviewer.id,
            "status": TaskStatus.OPEN,
            "assigned_at": work.now,
            "due_at": due,
            "remind_at": reminder_at(work.now, due),
            "replaces_task_id": replaces,
        }
    )
    what = "post-exchange report review" if request.kind is TaskKind.REPORT else "review"
    await mail_reviewer(
        work,
        reviewer,
        request,
        subject=f"New {what} task, due {due:%Y-%m-%d %H:%M} UTC",
        body=(
            f"you have been asked for a {what} of {mail_title(request)} "
            f"(program {request.program_code}), due on {due:%Y-%m-%d %H:%M} UTC.\n"
            f"Open it in your review inbox: /inbox/tasks/{task_id}\n"
            "If you have a conflict of interest, recuse yourself from the task there.\n"
        ),
        kind=MAIL_TASK_ASSIGNED,
    )
    logger.info(
        "task %s (slot %s) of %s round %s assigned to %s",
        task_id,
        slot,
        request.application_id,
        request.round,
        reviewer.id,
    )
    return task


async def take_away(
    work: Work, store: ReviewStore, request: RequestRow, task: TaskRow, reason: str
) -> None:
    """Close ``task`` as reassigned: its reviewer can read it but no longer submit it."""
    await store.close_task(task.id, TaskStatus.REASSIGNED, work.now, reason)
    reviewer = await store.reviewer(task.reviewer_id)
    assert reviewer is not None
    await mail_reviewer(
        work,
        reviewer,
        request,
        subject="A review task was reassigned",
        body=(
            f"your review task {task.id} for {mail_title(request)} has been reassigned to "
            f"another reviewer ({reason}).\nYou can no longer submit it. Thank you for your time.\n"
        ),
        kind=MAIL_TASK_REASSIGNED,
    )


async def mail_reviewer(
    work: Work, reviewer: ReviewerRow, request: RequestRow, *, subject: str, body: str, kind: str
) -> None:
    """Mail ``reviewer`` about a task of ``request`` once the work commits."""
    await work.mail(
        Mail(
            to=(reviewer.email,),
            subject=subject,
            body=f"Dear {reviewer.name},\n\n{body}",
            application_id=request.application_id,
        ),
        kind=kind,
    )


async def answer(
    work: Work, topic: Topic, payload: BaseModel, request: RequestRow, *, event_id: uuid.UUID
) -> None:
    """Publish an event about ``request``, filed under its subject (also from HTTP actions:
    the workflow asks again only about what it did not hear, whoever caused it)."""
    await work.publish(
        topic,
        payload,
        application_id=request.application_id,
        event_id=event_id,
        subject=request.subject,
        correlation_id=None if work.cause else request.correlation_id,
    )


async def report_short(work: Work, request: RequestRow, fill: Fill, *, key: str) -> None:
    """Tell the workflow that ``request`` lacks reviewers, so that it escalates."""
    if fill.short_by <= 0:
        return
    logger.warning(
        "%s round %s: %s of %s reviewers assigned",
        request.application_id,
        request.round,
        fill.staffed,
        fill.needed,
    )
    await answer(
        work,
        REVIEWERS_SHORT,
        ReviewersShort(
            application_id=request.application_id,
            round=request.round,
            needed=fill.needed,
            assigned=fill.staffed,
            report_id=request.report_id,
        ),
        request,
        event_id=deterministic_id("reviewers-short", request.id, key),
    )
