"""HTTP routes of the review service: the reviewer's queue and the program officer's desk.

Thin: parse, authorize, call one use case inside one unit of work. A reviewer only ever
sees its own tasks: another reviewer's task is a 404, exactly like a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, status

from services.review.domain import SPREAD_FLAG_BP, TaskKind, TaskStatus
from services.review.persistence import TaskFilter
from services.review.schemas import (
    FillIn,
    ReassignIn,
    RecuseIn,
    RecuseOut,
    RequestOut,
    ReviewerIn,
    ReviewerOut,
    ReviewerPatch,
    ReviewIn,
    ScoresOut,
    TaskDetail,
    TaskSummary,
    WorkloadOut,
)
from services.review.service import ReviewService
from shared.auth import OFFICERS, Principal, Role, require
from shared.contracts.base import IsoDateTime
from shared.http import Offset, limit_query
from shared.service import the_service

StatusFilter = Literal["open", "completed", "recused", "reassigned", "all"]

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "No such object, or not yours to see."}}
CONFLICT: Responses = {409: {"description": "The object is not in a state that allows this."}}

# Ids and codes are plain tokens; anything else (control characters, say) is a 422, never
# a database error.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
TaskId = Annotated[str, Path(pattern=ID_PATTERN)]
ReviewerIdPath = Annotated[str, Path(pattern=ID_PATTERN)]
ApplicationId = Annotated[str, Path(pattern=ID_PATTERN)]
RequestId = Annotated[str, Path(pattern=ID_PATTERN)]
IdFilter = Annotated[str | None, Query(pattern=ID_PATTERN)]

Review = Annotated[ReviewService, Depends(the_service)]
Reviewer = Annotated[Principal, Depends(require(Role.REVIEWER))]
Officer = Annotated[Principal, Depends(require(*OFFICERS))]


def statuses(wanted: StatusFilter) -> tuple[TaskStatus, ...]:
    return () if wanted == "all" else (TaskStatus(wanted),)


def reviewer_of(principal: Principal) -> str:
    assert principal.reviewer_id is not None, "a reviewer token names its reviewer"
    return principal.reviewer_id


# ---------------------------------------------------------------- reviewers' queue

reviewer_router = APIRouter(prefix="/v1/tasks", tags=["reviewer"])


@reviewer_router.get("", summary="My queue, soonest due first")
async def my_queue(
    principal: Reviewer,
    review: Review,
    status_filter: Annotated[StatusFilter, Query(alias="status")] = "open",
    kind: TaskKind | None = None,
    program_code: IdFilter = None,
    due_before: IsoDateTime | None = None,
    limit: int = limit_query(100, 500),
    offset: Offset = 0,
) -> list[TaskSummary]:
    where = TaskFilter(
        reviewer_id=reviewer_of(principal),
        statuses=statuses(status_filter),
        kind=kind,
        program_code=program_code,
        due_before=due_before,
        limit=limit,
        offset=offset,
    )
    async with review.reading() as work:
        records = await review.reviewer_queue(work, reviewer_of(principal), where)
    return [TaskSummary.of(record, work.now, officer=False) for record in records]


@reviewer_router.get(
    "/{task_id}", summary="One of my tasks with its application and rubric", responses=NOT_FOUND
)
async def my_task(principal: Reviewer, review: Review, task_id: TaskId) -> TaskDetail:
    async with review.reading() as work:
        record = await review.task_for_reviewer(work, reviewer_of(principal), task_id)
    return TaskDetail.of(record, work.now, officer=False)


@reviewer_router.post(
    "/{task_id}/review",
    status_code=status.HTTP_201_CREATED,
    summary="Submit scores, a recommendation and the conflict-of-interest attestation",
    responses={
        **NOT_FOUND,
        409: {
            "description": "Already submitted, recused, or reassigned after the deadline; or "
            "scores or a recommendation that the task's rubric and kind do not allow (each "
            "problem named)."
        },
        422: {"description": "A malformed body, or no attestation of no conflict."},
    },
)
async def submit_review(
    principal: Reviewer, review: Review, task_id: TaskId, body: ReviewIn
) -> TaskDetail:
    async with review.work() as work:
        record = await review.submit_review(work, reviewer_of(principal), task_id, body)
    return TaskDetail.of(record, work.now, officer=False)


@reviewer_router.post(
    "/{task_id}/recuse",
    summary="Leave the task for a conflict of interest; it goes to another reviewer",
    responses={**NOT_FOUND, **CONFLICT},
)
async def recuse(principal: Reviewer, review: Review, task_id: TaskId, body: RecuseIn) -> RecuseOut:
    async with review.work() as work:
        record, replaced = await review.recuse(work, reviewer_of(principal), task_id, body.reason)
    return RecuseOut(
        task=TaskSummary.of(record, work.now, officer=False), replacement_assigned=replaced
    )


# ---------------------------------------------------------------- program officers

officer_router = APIRouter(prefix="/v1", tags=["program officer"])


@officer_router.get("/reviewers", summary="Every reviewer with its open workload")
async def list_reviewers(
    _officer: Officer,
    review: Review,
    active: bool | None = None,
    limit: int = limit_query(100, 500),
    offset: Offset = 0,
) -> list[ReviewerOut]:
    async with review.reading() as work:
        return await review.all_reviewers(work, active, limit=limit, offset=offset)


@officer_router.post(
    "/reviewers",
    status_code=status.HTTP_201_CREATED,
    summary="Add a reviewer",
    responses={409: {"description": "A reviewer with this id exists."}},
)
async def create_reviewer(_officer: Officer, review: Review, body: ReviewerIn) -> ReviewerOut:
    async with review.work() as work:
        return await review.create_reviewer(work, body)


@officer_router.get(
    "/reviewers/{reviewer_id}", summary="A reviewer and its recusals", responses=NOT_FOUND
)
async def get_reviewer(
    _officer: Officer, review: Review, reviewer_id: ReviewerIdPath
) -> ReviewerOut:
    async with review.reading() as work:
        return await review.reviewer(work, reviewer_id)


@officer_router.patch(
    "/reviewers/{reviewer_id}",
    summary="Change a reviewer's profile, capacity, expertise, conflicts or active flag",
    responses=NOT_FOUND,
)
async def update_reviewer(
    _officer: Officer, review: Review, reviewer_id: ReviewerIdPath, body: ReviewerPatch
) -> ReviewerOut:
    async with review.work() as work:
        return await review.update_reviewer(work, reviewer_id, body)


@officer_router.get("/officer/tasks", summary="All tasks, with filters")
async def all_tasks(
    _officer: Officer,
    review: Review,
    status_filter: Annotated[StatusFilter, Query(alias="status")] = "all",
    reviewer_id: IdFilter = None,
    application_id: IdFilter = None,
    kind: TaskKind | None = None,
    program_code: IdFilter = None,
    overdue: bool = False,
    limit: int = limit_query(200, 1000),
    offset: Offset = 0,
) -> list[TaskSummary]:
    async with review.reading() as work:
        where = TaskFilter(
            reviewer_id=reviewer_id,
            statuses=(TaskStatus.OPEN,) if overdue else statuses(status_filter),
            kind=kind,
            application_id=application_id,
            program_code=program_code,
            due_before=work.now if overdue else None,
            limit=limit,
            offset=offset,
        )
        records = await review.queue(work, where)
    return [TaskSummary.of(record, work.now, officer=True) for record in records]


@officer_router.get("/officer/tasks/{task_id}", summary="Any task", responses=NOT_FOUND)
async def any_task(_officer: Officer, review: Review, task_id: TaskId) -> TaskDetail:
    async with review.reading() as work:
        record = await review.task_for_officer(work, task_id)
    return TaskDetail.of(record, work.now, officer=True)


@officer_router.post(
    "/officer/tasks/{task_id}/reassign",
    status_code=status.HTTP_201_CREATED,
    summary="Move an open task to a named reviewer or to the best eligible one",
    responses={
        **NOT_FOUND,
        409: {"description": "The task is closed, or nobody else may take it."},
    },
)
async def reassign_task(
    _officer: Officer, review: Review, task_id: TaskId, body: ReassignIn
) -> TaskDetail:
    async with review.work() as work:
        record = await review.officer_reassign(work, task_id, body.reason, body.reviewer_id)
    return TaskDetail.of(record, work.now, officer=True)


@officer_router.get(
    "/officer/applications/{application_id}/requests",
    summary="The review requests of an application and how far each is staffed",
    responses=NOT_FOUND,
)
async def application_requests(
    _officer: Officer,
    review: Review,
    application_id: ApplicationId,
    limit: int = limit_query(100, 500),
    offset: Offset = 0,
) -> list[RequestOut]:
    async with review.reading() as work:
        return await review.requests_of(work, application_id, limit=limit, offset=offset)


@officer_router.post(
    "/officer/requests/{request_id}/assign",
    status_code=status.HTTP_201_CREATED,
    summary="Staff the next empty slot of a request that was short of reviewers",
    responses={
        **NOT_FOUND,
        409: {"description": "Every slot is staffed, or nobody eligible is available."},
    },
)
async def staff_request(
    _officer: Officer, review: Review, request_id: RequestId, body: FillIn
) -> TaskDetail:
    async with review.work() as work:
        record = await review.officer_fill(work, request_id, body.reviewer_id)
    return TaskDetail.of(record, work.now, officer=True)


@officer_router.get(
    "/officer/workload", summary="Open work, overdue tasks and turnaround per reviewer"
)
async def workload(
    _officer: Officer,
    review: Review,
    limit: int = limit_query(100, 500),
    offset: Offset = 0,
) -> list[WorkloadOut]:
    async with review.reading() as work:
        lines = await review.workload_report(work, limit=limit, offset=offset)
    return [WorkloadOut.of(line) for line in lines]


@officer_router.get(
    "/officer/applications/{application_id}/scores",
    summary="Reviews of an application side by side, with the spread between reviewers",
    responses=NOT_FOUND,
)
async def application_scores(
    _officer: Officer,
    review: Review,
    application_id: ApplicationId,
    threshold_bp: Annotated[int, Query(ge=0, le=10_000)] = SPREAD_FLAG_BP,
) -> ScoresOut:
    async with review.reading() as work:
        return await review.scores(work, application_id, threshold_bp)
