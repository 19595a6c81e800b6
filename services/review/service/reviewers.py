"""What a reviewer does: read its queue and tasks, submit a review, recuse.

A reviewer only ever sees its own tasks: another reviewer's task is not found, exactly
like a missing one.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy.exc import IntegrityError

from services.review.domain import (
    TaskKind,
    TaskStatus,
    check_recommendation,
    check_scores,
    conflict,
)
from services.review.persistence import RequestRow, ReviewStore, TaskFilter, TaskRecord, TaskRow
from services.review.schemas import ReviewIn
from services.review.service.staffing import answer, fill_slots, report_short, reviewed
from shared.contracts.envelope import deterministic_id
from shared.contracts.review import (
    CriterionScore,
    ReportReviewed,
    ReviewCompleted,
    ReviewerRecused,
)
from shared.contracts.topics import REPORT_REVIEWED, REVIEW_COMPLETED, REVIEWER_RECUSED
from shared.errors import ConflictError, InvalidError, NotFoundError, Problem, UnmetRulesError
from shared.service import Service, Work

REPORT_OUTCOMES: Final = {"approve": "approved", "changes_requested": "changes_requested"}
NOT_IN_QUEUE: Final = "no such task in your queue"
ALREADY_SUBMITTED: Final = "this task's review was already submitted"


class ReviewerActions(Service):
    async def queue(self, work: Work, where: TaskFilter) -> list[TaskRecord]:
        return await ReviewStore(work.session).find_tasks(where)

    async def reviewer_queue(
        self, work: Work, reviewer_id: str, where: TaskFilter
    ) -> list[TaskRecord]:
        """The reviewer's tasks, without those of applications it has a conflict with."""
        store = ReviewStore(work.session)
        found = await store.find_tasks(where)
        return [
            record
            for record in found
            if record.task.reviewer_id == reviewer_id
            and not await conflicted(store, reviewer_id, record.request)
        ]

    async def task_for_reviewer(self, work: Work, reviewer_id: str, task_id: str) -> TaskRecord:
        """A reviewer's own task; anyone else's is not found (the same 404 as a missing one)."""
        store = ReviewStore(work.session)
        return await store.task_record(await _own_task(store, reviewer_id, task_id))

    async def submit_review(
        self, work: Work, reviewer_id: str, task_id: str, submission: ReviewIn
    ) -> TaskRecord:
        store = ReviewStore(work.session)
        task = await _own_task(store, reviewer_id, task_id, lock=True)
        if await store.review(task.id) is not None:
            raise ConflictError(ALREADY_SUBMITTED)
        if task.status is TaskStatus.REASSIGNED:
            raise ConflictError(
                "this task was reassigned to another reviewer after its deadline "
                "and can no longer be submitted"
            )
        if task.status is not TaskStatus.OPEN:
            raise ConflictError(f"this task is {task.status.value} and can no longer be submitted")
        request = (await store.task_record(task)).request
        # What a review may say depends on the stored task (its kind, its rubric's
        # criteria and ranges), which no schema knows: that is a 409, not a 422.
        problems = check_recommendation(task.kind, submission.recommendation)
        problems += check_scores(request.rubric, submission.scores)
        if not submission.attest_no_conflict:
            attest = Problem(
                "attest_no_conflict",
                "you must attest that you have no conflict of interest (or recuse instead)",
            )
            raise InvalidError([attest, *problems])
        if problems:
            raise UnmetRulesError(problems)
        total = request.rubric.weighted_total_bp(submission.scores)
        scores = {c.name: submission.scores[c.name] for c in request.rubric.criteria}
        try:
            async with work.session.begin_nested():
                await store.add_review(
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
                        "submitted_at": work.now,
                    }
                )
        except IntegrityError as error:  # a concurrent submission of the same task won
            raise ConflictError(ALREADY_SUBMITTED) from error
        await store.close_task(task.id, TaskStatus.COMPLETED, work.now, None)
        if task.kind is TaskKind.APPLICATION:
            await answer(
                work,
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
            await answer(
                work,
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
        return await _reread(store, task)

    async def recuse(
        self, work: Work, reviewer_id: str, task_id: str, reason: str
    ) -> tuple[TaskRecord, bool]:
        """The reviewer leaves the task for a conflict: recorded, and the slot refilled.

        Also answers whether someone else took the task over.
        """
        store = ReviewStore(work.session)
        task = await _own_task(store, reviewer_id, task_id, lock=True)
        if task.status is not TaskStatus.OPEN:
            raise ConflictError(
                f"this task is {task.status.value}; only an open task can be recused"
            )
        replacement = await leave_task(work, store, task, reason)
        return await _reread(store, task), replacement is not None


async def _own_task(
    store: ReviewStore, reviewer_id: str, task_id: str, *, lock: bool = False
) -> TaskRow:
    """The reviewer's task, unless it is not its own or the reviewer has a conflict with
    the application (declared since, or recused on it): then it is not found, as a
    missing task is."""
    task = await store.task(task_id, lock=lock)
    if task is None or task.reviewer_id != reviewer_id:
        raise NotFoundError(NOT_IN_QUEUE)
    if await conflicted(store, reviewer_id, (await store.task_record(task)).request):
        raise NotFoundError(NOT_IN_QUEUE)
    return task


async def conflicted(store: ReviewStore, reviewer_id: str, request: RequestRow) -> bool:
    """Whether the reviewer has a conflict with the request's application, now."""
    profile = await store.reviewer(reviewer_id)
    if profile is None or conflict(profile.candidate(0), reviewed(request)) is not None:
        return True
    recused = {recusal.application_id for recusal in await store.reviewer_recusals(reviewer_id)}
    return request.application_id in recused


async def _reread(store: ReviewStore, task: TaskRow) -> TaskRecord:
    """The task as the change left it."""
    changed = await store.task(task.id)
    assert changed is not None
    return await store.task_record(changed)


async def leave_task(work: Work, store: ReviewStore, task: TaskRow, reason: str) -> str | None:
    """The task's reviewer leaves it for a conflict: recorded, the slot refilled, the
    workflow told; the replacement task's id, if someone took it over."""
    request = (await store.task_record(task)).request
    await store.close_task(task.id, TaskStatus.RECUSED, work.now, reason)
    await store.add_recusal(
        {
            "task_id": task.id,
            "reviewer_id": task.reviewer_id,
            "application_id": task.application_id,
            "member_id": request.member_id,
            "reason": reason,
            "recorded_at": work.now,
        }
    )
    fill = await fill_slots(work, store, request)
    replacement = next((t for slot, t in fill.assigned if slot == task.slot), None)
    await answer(
        work,
        REVIEWER_RECUSED,
        ReviewerRecused(
            application_id=task.application_id,
            round=task.round,
            task_id=task.id,
            reviewer_id=task.reviewer_id,
            reason=reason,
            replacement_task_id=replacement,
            report_id=task.report_id,
        ),
        request,
        event_id=deterministic_id("reviewer-recused", task.id),
    )
    await report_short(work, request, fill, key=f"recusal:{task.id}")
    return replacement


async def take_away_conflicted(work: Work, reviewer_id: str) -> int:
    """Take from the reviewer every open task it now has a conflict with, as if it had
    recused (recorded, the slot given to another reviewer); how many it took."""
    store = ReviewStore(work.session)
    profile = await store.reviewer(reviewer_id)
    if profile is None:
        return 0
    taken = 0
    for record in await store.find_tasks(
        TaskFilter(reviewer_id=reviewer_id, statuses=(TaskStatus.OPEN,))
    ):
        reason = conflict(profile.candidate(0), reviewed(record.request))
        if reason is not None:
            await leave_task(work, store, record.task, f"{reason} (declared after assignment)")
            taken += 1
    return taken
