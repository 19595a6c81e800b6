"""Use cases of the review service, one function per action, each over the caller's session.

The caller (a route, a subscriber, a job) owns the transaction: every state change here and
the events it causes (outbox) and the mail it sends (mail queue) commit together or not at
all.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.review import persistence as db
from services.review.demo import DEMO_REVIEWERS
from services.review.domain import (
    Candidate,
    Problem,
    Subject,
    TaskKind,
    TaskStatus,
    Workload,
    check_recommendation,
    check_scores,
    choose_reviewers,
    ineligibility,
    reminder_at,
    replacement_due,
    spread,
    withhold,
    workload,
)
from services.review.persistence import RequestRow, ReviewerRow, ReviewRow, TaskFilter, TaskRow
from services.review.schemas import (
    Recusal,
    ReportView,
    RequestOut,
    ReviewerIn,
    ReviewerOut,
    ReviewerPatch,
    ReviewIn,
    RoundScores,
    ScoresOut,
)
from shared.contracts.envelope import Envelope, deterministic_id, new_envelope
from shared.contracts.reporting import ReportSubmitted
from shared.contracts.review import (
    CriterionScore,
    ReportReviewed,
    ReviewCompleted,
    ReviewerRecused,
    ReviewersShort,
)
from shared.contracts.topics import (
    REPORT_REVIEWED,
    REVIEW_COMPLETED,
    REVIEWER_RECUSED,
    REVIEWERS_SHORT,
    Topic,
)
from shared.contracts.workflows import ReassignReview, RequestReportReview, RequestReviews
from shared.mail import Mail, Mailer
from shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)

PRODUCER: Final = "review"
REPORT_OUTCOMES: Final = {"approve": "approved", "changes_requested": "changes_requested"}


class ReviewError(Exception):
    """A use case refused; ``str(error)`` is safe to show the caller."""


class NotFoundError(ReviewError):
    pass


class ConflictError(ReviewError):
    pass


class InvalidError(ReviewError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = list(problems)


# ---------------------------------------------------------------- commands from the workflow


async def request_reviews(
    session: AsyncSession,
    outbox: Outbox,
    event: Envelope[RequestReviews],
    topic: str,
    now: datetime,
) -> None:
    """Create the round's tasks; a repeated request only fills slots still empty."""
    command = event.payload
    request = await db.find_request(
        session,
        command_id=command.command_id,
        kind=TaskKind.APPLICATION,
        application_id=command.application_id,
        round=command.round,
    )
    if request is None:
        await db.add_request(
            session,
            {
                "id": str(
                    deterministic_id(
                        "review-request", command.application_id, "round", str(command.round)
                    )
                ),
                "kind": TaskKind.APPLICATION,
                "command_id": command.command_id,
                "application_id": command.application_id,
                "round": command.round,
                "report_id": None,
                "member_id": command.member_id,
                "member_city": command.member_city,
                "program_code": command.program_code,
                "focus_area": command.focus_area,
                "partner_city": command.partner_city,
                "partner_country": command.partner_country,
                "blind_review": command.blind_review,
                "title": command.title,
                "summary": command.summary,
                "requested": command.requested.model_dump(mode="json"),
                "rubric": command.rubric.model_dump(mode="json"),
                "reviews_needed": command.reviews_needed,
                "due_at": command.due_at,
                "received_at": now,
                "correlation_id": event.correlation_id,
            },
        )
        request = await db.find_request(
            session,
            command_id=command.command_id,
            kind=TaskKind.APPLICATION,
            application_id=command.application_id,
            round=command.round,
        )
        assert request is not None
    else:
        logger.info(
            "review request for %s round %s seen before: filling empty slots only",
            command.application_id,
            command.round,
        )
    fill = await _fill(session, request, now)
    await _report_short(session, outbox, request, fill, key=str(event.event_id), cause=event)


async def request_report_review(
    session: AsyncSession,
    outbox: Outbox,
    event: Envelope[RequestReportReview],
    topic: str,
    now: datetime,
) -> None:
    """One task for a post-exchange report; a repeated command fills the slot if empty."""
    command = event.payload
    earlier = await db.report_requests(session, command.application_id)
    request = None
    for candidate in earlier:
        # The same command again, or the same report while its review is still pending.
        if candidate.command_id == command.command_id or (
            candidate.report_id == command.report_id and not await _has_review(session, candidate)
        ):
            request = candidate
            break
    if request is None:
        application = await db.latest_application_request(session, command.application_id)
        round = len(earlier) + 1
        await db.add_request(
            session,
            {
                "id": str(
                    deterministic_id("review-request", command.application_id, "report", str(round))
                ),
                "kind": TaskKind.REPORT,
                "command_id": command.command_id,
                "application_id": command.application_id,
                "round": round,
                "report_id": command.report_id,
                "member_id": command.member_id,
                "member_city": application.member_city if application else None,
                "program_code": command.program_code,
                "focus_area": application.focus_area if application else None,
                "partner_city": application.partner_city if application else None,
                "partner_country": application.partner_country if application else None,
                "blind_review": False,
                "title": f"Post-exchange report: {application.title}"
                if application
                else f"Post-exchange report {command.report_id}",
                "summary": application.summary if application else "",
                "requested": application.requested if application else None,
                "rubric": command.rubric.model_dump(mode="json"),
                "reviews_needed": 1,
                "due_at": command.due_at,
                "received_at": now,
                "correlation_id": event.correlation_id,
                "report": await db.latest_report(session, command.report_id),
            },
        )
        request = await db.find_request(
            session,
            command_id=command.command_id,
            kind=TaskKind.REPORT,
            application_id=command.application_id,
            round=round,
        )
        assert request is not None
    fill = await _fill(session, request, now)
    await _report_short(session, outbox, request, fill, key=str(event.event_id), cause=event)


async def record_report(
    session: AsyncSession,
    _outbox: Outbox,
    event: Envelope[ReportSubmitted],
    _topic: str,
    now: datetime,
) -> None:
    """Keep a submitted report so that its review shows it, whichever of the two comes first.

    A review not yet done is shown a newer revision; a finished one keeps what it reviewed.
    """
    submitted = event.payload
    report = ReportView(
        report_id=submitted.report_id,
        revision=submitted.revision,
        actual_spending=submitted.actual_spending,
        content=submitted.content,
        submitted_at=event.occurred_at,
    ).model_dump(mode="json")
    kept = await db.save_report(
        session,
        report_id=submitted.report_id,
        revision=submitted.revision,
        application_id=submitted.application_id,
        report=report,
        at=now,
    )
    if not kept:
        return
    for request in await db.requests_for_report(session, submitted.report_id):
        shown = int(request.report["revision"]) if request.report else 0
        if shown < submitted.revision and not await _has_review(session, request):
            await db.show_report(session, request.id, report)


async def _has_review(session: AsyncSession, request: RequestRow) -> bool:
    return any(
        t.status is TaskStatus.COMPLETED for t in await db.request_tasks(session, request.id)
    )


async def reassign_late(
    session: AsyncSession,
    outbox: Outbox,
    event: Envelope[ReassignReview],
    topic: str,
    now: datetime,
) -> None:
    """The deadline passed: move open tasks of the round to other reviewers.

    The late reviewer keeps a task marked ``reassigned`` that it can read but no longer
    submit (409). A re-sent command (same ``command_id``) changes nothing.
    """
    command = event.payload
    if await db.command_seen(session, command.command_id):
        logger.info("reassignment %s handled before", command.command_id)
        return
    await db.record_command(session, command.command_id, topic, now)
    request = await db.request_by_round(session, command.application_id, command.round)
    if request is None:
        logger.warning(
            "reassignment for %s round %s: no such review request",
            command.application_id,
            command.round,
        )
        return
    late = [
        task
        for task in await db.request_tasks(session, request.id)
        if task.status is TaskStatus.OPEN and command.task_id in (None, task.id)
    ]
    if not late:
        # E.g. the workflow asks again for a task whose reviewer recused with nobody to take
        # it over: the empty slot is staffed if someone has become available since.
        logger.info("reassignment for %s: no open task to move", command.application_id)
    for task in late:
        await _take_away(session, request, task, command.reason, now)
    fill = await _fill(session, request, now)
    await _report_short(session, outbox, request, fill, key=str(event.event_id), cause=event)


# ---------------------------------------------------------------- reviewer actions


async def task_for_reviewer(
    session: AsyncSession, reviewer_id: str, task_id: str
) -> tuple[TaskRow, RequestRow, ReviewRow | None]:
    """A reviewer's own task; anyone else's is not found (the same 404 as a missing one)."""
    task = await db.get_task(session, task_id)
    if task is None or task.reviewer_id != reviewer_id:
        raise NotFoundError("no such task in your queue")
    return await _with_request(session, task)


async def task_for_officer(
    session: AsyncSession, task_id: str
) -> tuple[TaskRow, RequestRow, ReviewRow | None]:
    task = await db.get_task(session, task_id)
    if task is None:
        raise NotFoundError("no such task")
    return await _with_request(session, task)


async def _with_request(
    session: AsyncSession, task: TaskRow
) -> tuple[TaskRow, RequestRow, ReviewRow | None]:
    request = await db.get_request(session, task.request_id)
    assert request is not None
    return task, request, await db.get_review(session, task.id)


async def queue(session: AsyncSession, where: TaskFilter) -> list[tuple[TaskRow, RequestRow]]:
    return await db.find_tasks(session, where)


async def submit_review(
    session: AsyncSession,
    outbox: Outbox,
    reviewer_id: str,
    task_id: str,
    submission: ReviewIn,
    now: datetime,
) -> tuple[TaskRow, RequestRow, ReviewRow]:
    task = await db.get_task(session, task_id, lock=True)
    if task is None or task.reviewer_id != reviewer_id:
        raise NotFoundError("no such task in your queue")
    if await db.get_review(session, task.id) is not None:
        raise ConflictError("this task's review was already submitted")
    if task.status is TaskStatus.REASSIGNED:
        raise ConflictError(
            "this task was reassigned to another reviewer after its deadline "
            "and can no longer be submitted"
        )
    if task.status is not TaskStatus.OPEN:
        raise ConflictError(f"this task is {task.status.value} and can no longer be submitted")
    request = await db.get_request(session, task.request_id)
    assert request is not None
    problems = check_recommendation(task.kind, submission.recommendation)
    problems += check_scores(request.rubric, submission.scores)
    if not submission.attest_no_conflict:
        problems.append(
            Problem(
                ("attest_no_conflict",),
                "you must attest that you have no conflict of interest (or recuse instead)",
            )
        )
    if problems:
        raise InvalidError(problems)
    total = request.rubric.weighted_total_bp(submission.scores)
    scores = {c.name: submission.scores[c.name] for c in request.rubric.criteria}
    try:
        async with session.begin_nested():
            await db.add_review(
                session,
                {
                    "task_id": task.id,
                    "reviewer_id": reviewer_id,
                    "application_id": task.application_id,
                    "round": task.round,
                    "kind": task.kind,
                    "scores": scores,
                    "weighted_total_bp": total,
                    "recommendation": submission.recommendation,
                    "comments": submission.comments,
                    "attested_no_conflict": submission.attest_no_conflict,
                    "submitted_at": now,
                },
            )
    except IntegrityError as error:  # a concurrent submission of the same task won
        raise ConflictError("this task's review was already submitted") from error
    await db.close_task(session, task.id, TaskStatus.COMPLETED, now, None)
    if task.kind is TaskKind.APPLICATION:
        await _publish(
            session,
            outbox,
            REVIEW_COMPLETED,
            ReviewCompleted(
                application_id=task.application_id,
                round=task.round,
                task_id=task.id,
                reviewer_id=reviewer_id,
                scores=[CriterionScore(criterion=n, score=s) for n, s in scores.items()],
                weighted_total_bp=total,
                recommendation=submission.recommendation,
                comments=submission.comments,
            ),
            request,
            event_id=deterministic_id("review-completed", task.id),
        )
    else:
        assert task.report_id is not None
        await _publish(
            session,
            outbox,
            REPORT_REVIEWED,
            ReportReviewed(
                application_id=task.application_id,
                report_id=task.report_id,
                reviewer_id=reviewer_id,
                outcome=REPORT_OUTCOMES[submission.recommendation],
                comments=submission.comments,
            ),
            request,
            event_id=deterministic_id("report-reviewed", task.id),
        )
    review = await db.get_review(session, task.id)
    closed = await db.get_task(session, task.id)
    assert review is not None and closed is not None
    return closed, request, review


async def recuse(
    session: AsyncSession,
    outbox: Outbox,
    reviewer_id: str,
    task_id: str,
    reason: str,
    now: datetime,
) -> tuple[TaskRow, RequestRow, bool]:
    """The reviewer leaves the task for a conflict; the conflict is recorded, the slot refilled."""
    task = await db.get_task(session, task_id, lock=True)
    if task is None or task.reviewer_id != reviewer_id:
        raise NotFoundError("no such task in your queue")
    if task.status is not TaskStatus.OPEN:
        raise ConflictError(f"this task is {task.status.value}; only an open task can be recused")
    request = await db.get_request(session, task.request_id)
    assert request is not None
    await db.close_task(session, task.id, TaskStatus.RECUSED, now, reason)
    await db.add_recusal(
        session,
        {
            "task_id": task.id,
            "reviewer_id": reviewer_id,
            "application_id": task.application_id,
            "member_id": request.member_id,
            "reason": reason,
            "recorded_at": now,
        },
    )
    fill = await _fill(session, request, now)
    replacement = next((t for slot, t in fill.assigned if slot == task.slot), None)
    await _publish(
        session,
        outbox,
        REVIEWER_RECUSED,
        ReviewerRecused(
            application_id=task.application_id,
            round=task.round,
            task_id=task.id,
            reviewer_id=reviewer_id,
            reason=reason,
            replacement_task_id=replacement,
            report_id=task.report_id,
        ),
        request,
        event_id=deterministic_id("reviewer-recused", task.id),
    )
    await _report_short(session, outbox, request, fill, key=f"recusal:{task.id}")
    closed = await db.get_task(session, task.id)
    assert closed is not None
    return closed, request, replacement is not None


# ---------------------------------------------------------------- officer actions


async def officer_reassign(
    session: AsyncSession,
    outbox: Outbox,
    task_id: str,
    reason: str,
    reviewer_id: str | None,
    now: datetime,
) -> TaskRow:
    """Move an open task by hand, to a named reviewer or the best eligible one.

    Refused (409) rather than leaving the slot empty when nobody else may take it.
    """
    task = await db.get_task(session, task_id, lock=True)
    if task is None:
        raise NotFoundError("no such task")
    if task.status is not TaskStatus.OPEN:
        raise ConflictError(f"this task is {task.status.value}; only an open task can move")
    request = await db.get_request(session, task.request_id)
    assert request is not None
    chosen = await _pick_one(session, request, reviewer_id)
    await _take_away(session, request, task, f"reassigned by a program officer: {reason}", now)
    return await _assign(session, request, task.slot, chosen, now, replaces=task.id, refill=True)


async def officer_fill(
    session: AsyncSession, outbox: Outbox, request_id: str, reviewer_id: str | None, now: datetime
) -> TaskRow:
    """Staff the next empty slot of a request that was short of reviewers."""
    request = await db.get_request(session, request_id)
    if request is None:
        raise NotFoundError("no such review request")
    empty = _empty_slots(request, await db.request_tasks(session, request.id))
    if not empty:
        raise ConflictError("every slot of this request already has a reviewer")
    chosen = await _pick_one(session, request, reviewer_id)
    closed = [t for t in await db.request_tasks(session, request.id) if t.slot == empty[0]]
    return await _assign(
        session,
        request,
        empty[0],
        chosen,
        now,
        replaces=closed[-1].id if closed else None,
        refill=True,
    )


async def _pick_one(
    session: AsyncSession, request: RequestRow, reviewer_id: str | None
) -> ReviewerRow:
    """The named reviewer if it may take the request, else the best eligible one."""
    rows, counts = await db.lock_reviewers(session)
    by_id = {row.id: row for row in rows}
    candidates = [row.candidate(counts.get(row.id, 0)) for row in rows]
    excluded = frozenset(await db.excluded_reviewers(session, request.id, request.application_id))
    subject = _subject(request)
    if reviewer_id is not None:
        named = next((c for c in candidates if c.reviewer_id == reviewer_id), None)
        if named is None:
            raise InvalidError([Problem(("reviewer_id",), f"no reviewer {reviewer_id!r}")])
        why_not = ineligibility(named, subject, excluded)
        if why_not:
            raise ConflictError(f"{reviewer_id} may not review this: {why_not}")
        return by_id[reviewer_id]
    assignment = choose_reviewers(subject, candidates, 1, excluded)
    if not assignment.reviewer_ids:
        raise ConflictError("no eligible reviewer is available for this application")
    return by_id[assignment.reviewer_ids[0]]


async def requests_of(session: AsyncSession, application_id: str) -> list[RequestOut]:
    result = []
    for request in await db.application_requests(session, application_id):
        result.append(_request_out(request, await db.request_tasks(session, request.id)))
    return result


async def request_status(session: AsyncSession, request_id: str) -> RequestOut:
    request = await db.get_request(session, request_id)
    if request is None:
        raise NotFoundError("no such review request")
    return _request_out(request, await db.request_tasks(session, request.id))


def _request_out(request: RequestRow, tasks: list[TaskRow]) -> RequestOut:
    return RequestOut(
        id=request.id,
        kind=request.kind,
        application_id=request.application_id,
        round=request.round,
        report_id=request.report_id,
        program_code=request.program_code,
        reviews_needed=request.reviews_needed,
        staffed=request.reviews_needed - len(_empty_slots(request, tasks)),
        completed=sum(t.status is TaskStatus.COMPLETED for t in tasks),
        due_at=request.due_at,
    )


async def scores(session: AsyncSession, application_id: str, threshold_bp: int) -> ScoresOut:
    """Every round's reviews side by side, with the spread between reviewers."""
    requests = await db.application_requests(session, application_id)
    if not requests:
        raise NotFoundError("no reviews were requested for this application")
    all_reviews = await db.application_reviews(session, application_id)
    rounds = []
    for request in requests:
        rows = [r for r in all_reviews if r.kind is request.kind and r.round == request.round]
        gap = spread([r.weighted_total_bp for r in rows], [r.scores for r in rows], threshold_bp)
        rounds.append(RoundScores.of(request, rows, gap))
    return ScoresOut(application_id=application_id, threshold_bp=threshold_bp, rounds=rounds)


async def workload_report(session: AsyncSession, now: datetime) -> list[Workload]:
    capacities = {row.id: row.capacity for row in await db.list_reviewers(session)}
    return workload(capacities, await db.task_times(session), now)


# ---------------------------------------------------------------- reviewers


async def create_reviewer(session: AsyncSession, profile: ReviewerIn, now: datetime) -> ReviewerOut:
    if await db.get_reviewer(session, profile.id) is not None:
        raise ConflictError(f"reviewer {profile.id} exists already")
    await db.add_reviewer(
        session,
        {"id": profile.id, **_profile_values(profile), "created_at": now, "updated_at": now},
    )
    return await reviewer(session, profile.id)


async def update_reviewer(
    session: AsyncSession, reviewer_id: str, patch: ReviewerPatch, now: datetime
) -> ReviewerOut:
    if await db.get_reviewer(session, reviewer_id) is None:
        raise NotFoundError("no such reviewer")
    values = _profile_values(patch)
    if values:
        await db.update_reviewer(session, reviewer_id, {**values, "updated_at": now})
    return await reviewer(session, reviewer_id)


def _profile_values(profile: ReviewerIn | ReviewerPatch) -> dict[str, Any]:
    """Column values for the fields given (all of them for a new reviewer)."""
    given = profile.model_fields_set if isinstance(profile, ReviewerPatch) else None
    values: dict[str, Any] = {}
    for name in ("name", "email", "home_city", "home_country", "capacity", "active"):
        value = getattr(profile, name)
        if given is None or (name in given and (value is not None or name == "home_country")):
            values[name] = value
    if profile.expertise is not None and (given is None or "expertise" in given):
        values |= {
            "programs": profile.expertise.programs,
            "focus_areas": profile.expertise.focus_areas,
            "regions": profile.expertise.regions,
            "languages": profile.expertise.languages,
        }
    if profile.conflicts is not None and (given is None or "conflicts" in given):
        values |= {
            "conflict_members": profile.conflicts.members,
            "conflict_cities": profile.conflicts.cities,
        }
    return values


async def reviewer(session: AsyncSession, reviewer_id: str) -> ReviewerOut:
    row = await db.get_reviewer(session, reviewer_id)
    if row is None:
        raise NotFoundError("no such reviewer")
    counts = await db.open_task_counts(session)
    recusals = [Recusal(**r) for r in await db.reviewer_recusals(session, reviewer_id)]
    return ReviewerOut.of(row, counts.get(row.id, 0), recusals)


async def all_reviewers(session: AsyncSession, active: bool | None) -> list[ReviewerOut]:
    counts = await db.open_task_counts(session)
    return [
        ReviewerOut.of(row, counts.get(row.id, 0))
        for row in await db.list_reviewers(session, active)
    ]


async def seed_demo_reviewers(session: AsyncSession, now: datetime) -> int:
    """Add the demo reviewers that are missing; return how many were added."""
    present = await db.existing_reviewer_ids(session, [r["id"] for r in DEMO_REVIEWERS])
    missing = [r for r in DEMO_REVIEWERS if r["id"] not in present]
    for values in missing:
        await db.add_reviewer(session, {**values, "created_at": now, "updated_at": now})
    return len(missing)


# ---------------------------------------------------------------- mail and reminders


async def remind_due(session: AsyncSession, now: datetime) -> int:
    """Queue a reminder for each open task that reached its reminder time."""
    due = await db.tasks_to_remind(session, now)
    for task in due:
        request = await db.get_request(session, task.request_id)
        row = await db.get_reviewer(session, task.reviewer_id)
        assert request is not None and row is not None
        await db.mark_reminded(session, task.id, now)
        await db.queue_mail(
            session,
            recipients=[row.email],
            subject=f"Reminder: review due {task.due_at:%Y-%m-%d %H:%M} UTC",
            body=(
                f"Dear {row.name},\n\nyour review of {_mail_title(request)} "
                f"(task {task.id}) is due on {task.due_at:%Y-%m-%d %H:%M} UTC.\n"
                f"Open it in your review inbox: /inbox/tasks/{task.id}\n"
            ),
            application_id=task.application_id,
            at=now,
        )
    return len(due)


async def deliver_mail(
    sessions: async_sessionmaker[AsyncSession], mailer: Mailer, now: datetime
) -> int:
    """Send queued mail; a failure is recorded and retried on the next round."""
    async with sessions() as session:
        pending = await db.unsent_mail(session)
    sent = 0
    for message in pending:
        try:
            await mailer.send(
                Mail(
                    to=tuple(message.recipients),
                    subject=message.subject,
                    body=message.body,
                    application_id=message.application_id,
                )
            )
        except Exception as error:  # one bad address or an SMTP outage must not stop the rest
            logger.warning("could not send mail %s: %r", message.id, error)
            async with sessions() as session, session.begin():
                await db.mark_mail_failed(session, message.id, repr(error))
            continue
        async with sessions() as session, session.begin():
            await db.mark_mail_sent(session, message.id, now)
        sent += 1
    return sent


# ---------------------------------------------------------------- assignment internals


@dataclass(frozen=True)
class Fill:
    assigned: list[tuple[int, str]]  # (slot, task id)
    staffed: int
    needed: int

    @property
    def short_by(self) -> int:
        return self.needed - self.staffed


def _subject(request: RequestRow) -> Subject:
    return Subject(
        application_id=request.application_id,
        member_id=request.member_id,
        member_city=request.member_city,
        program_code=request.program_code,
        focus_area=request.focus_area,
        partner_city=request.partner_city,
        partner_country=request.partner_country,
    )


def _empty_slots(request: RequestRow, tasks: list[TaskRow]) -> list[int]:
    staffed = {t.slot for t in tasks if t.status in (TaskStatus.OPEN, TaskStatus.COMPLETED)}
    return [slot for slot in range(1, request.reviews_needed + 1) if slot not in staffed]


async def _fill(session: AsyncSession, request: RequestRow, now: datetime) -> Fill:
    """Give every empty slot of ``request`` to the best eligible reviewer, if there is one."""
    rows, counts = await db.lock_reviewers(session)
    tasks = await db.request_tasks(session, request.id)
    empty = _empty_slots(request, tasks)
    if not empty:
        return Fill([], request.reviews_needed, request.reviews_needed)
    excluded = frozenset(await db.excluded_reviewers(session, request.id, request.application_id))
    candidates: list[Candidate] = [row.candidate(counts.get(row.id, 0)) for row in rows]
    assignment = choose_reviewers(_subject(request), candidates, len(empty), excluded)
    by_id = {row.id: row for row in rows}
    assigned = []
    for slot, reviewer_id in zip(empty, assignment.reviewer_ids, strict=False):
        previous = [t for t in tasks if t.slot == slot]
        task = await _assign(
            session,
            request,
            slot,
            by_id[reviewer_id],
            now,
            replaces=previous[-1].id if previous else None,
            refill=bool(previous),
        )
        assigned.append((slot, task.id))
    staffed = request.reviews_needed - len(empty) + len(assigned)
    return Fill(assigned, staffed, request.reviews_needed)


async def _assign(
    session: AsyncSession,
    request: RequestRow,
    slot: int,
    reviewer_row: ReviewerRow,
    now: datetime,
    *,
    replaces: str | None,
    refill: bool,
) -> TaskRow:
    period = request.due_at - request.received_at
    due = replacement_due(now, request.due_at, period) if refill else request.due_at
    task_id = str(deterministic_id("review-task", request.id, reviewer_row.id))
    await db.add_task(
        session,
        {
            "id": task_id,
            "request_id": request.id,
            "kind": request.kind,
            "application_id": request.application_id,
            "round": request.round,
            "report_id": request.report_id,
            "slot": slot,
            "reviewer_id": reviewer_row.id,
            "status": TaskStatus.OPEN,
            "assigned_at": now,
            "due_at": due,
            "remind_at": reminder_at(now, due),
            "replaces_task_id": replaces,
        },
    )
    what = "post-exchange report review" if request.kind is TaskKind.REPORT else "review"
    await db.queue_mail(
        session,
        recipients=[reviewer_row.email],
        subject=f"New {what} task, due {due:%Y-%m-%d %H:%M} UTC",
        body=(
            f"Dear {reviewer_row.name},\n\nyou have been asked for a {what} of "
            f"{_mail_title(request)} (program {request.program_code}), "
            f"due on {due:%Y-%m-%d %H:%M} UTC.\n"
            f"Open it in your review inbox: /inbox/tasks/{task_id}\n"
            "If you have a conflict of interest, recuse yourself from the task there.\n"
        ),
        application_id=request.application_id,
        at=now,
    )
    logger.info(
        "task %s (slot %s) of %s round %s assigned to %s",
        task_id,
        slot,
        request.application_id,
        request.round,
        reviewer_row.id,
        extra={"application_id": request.application_id},
    )
    task = await db.get_task(session, task_id)
    assert task is not None
    return task


async def _take_away(
    session: AsyncSession, request: RequestRow, task: TaskRow, reason: str, now: datetime
) -> None:
    await db.close_task(session, task.id, TaskStatus.REASSIGNED, now, reason)
    row = await db.get_reviewer(session, task.reviewer_id)
    assert row is not None
    await db.queue_mail(
        session,
        recipients=[row.email],
        subject="A review task was reassigned",
        body=(
            f"Dear {row.name},\n\nyour review task {task.id} for {_mail_title(request)} "
            f"has been reassigned to another reviewer ({reason}).\n"
            "You can no longer submit it. Thank you for your time.\n"
        ),
        application_id=request.application_id,
        at=now,
    )


def _mail_title(request: RequestRow) -> str:
    title = request.title
    if request.blind_review:
        title = withhold(title, (request.member_city, request.partner_city, request.member_id))
    return f"application {request.application_id} ({title})"


async def _report_short(
    session: AsyncSession,
    outbox: Outbox,
    request: RequestRow,
    fill: Fill,
    *,
    key: str,
    cause: Envelope[Any] | None = None,
) -> None:
    if fill.short_by <= 0:
        return
    logger.warning(
        "%s round %s: %s of %s reviewers assigned",
        request.application_id,
        request.round,
        fill.staffed,
        fill.needed,
    )
    await _publish(
        session,
        outbox,
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
        cause=cause,
    )


async def _publish(
    session: AsyncSession,
    outbox: Outbox,
    topic: Topic,
    payload: BaseModel,
    request: RequestRow,
    *,
    event_id: uuid.UUID,
    cause: Envelope[Any] | None = None,
) -> None:
    envelope = new_envelope(
        payload,
        producer=PRODUCER,
        application_id=request.application_id,
        event_id=event_id,
        correlation_id=None if cause else request.correlation_id,
        causation=cause,
    )
    await outbox.add(session, topic, envelope)
