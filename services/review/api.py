"""HTTP routes of the review service: the reviewer's queue and the program officer's desk.

Thin: parse, authorize, call one use case inside one unit of work. A reviewer only ever
sees its own tasks: another reviewer's task is a 404, exactly like a missing one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, status
from fastapi.responses import JSONResponse

from services.review import service
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
from shared.auth import OFFICERS, Principal, Role, require
from shared.db import unit_of_work
from shared.service import ServiceRuntime

Clock = Callable[[], datetime]
StatusFilter = Literal["open", "completed", "recused", "reassigned", "all"]

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"description": "No such object, or not yours to see."}}
CONFLICT: Responses = {409: {"description": "The object is not in a state that allows this."}}


def system_clock() -> datetime:
    return datetime.now(UTC)


async def runtime_of(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def now_of(request: Request) -> datetime:
    clock: Clock = getattr(request.app.state, "clock", system_clock)
    return clock()


# Ids and codes are plain tokens; anything else (control characters, say) is a 422, never
# a database error.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
TaskId = Annotated[str, Path(pattern=ID_PATTERN)]
ReviewerIdPath = Annotated[str, Path(pattern=ID_PATTERN)]
ApplicationId = Annotated[str, Path(pattern=ID_PATTERN)]
RequestId = Annotated[str, Path(pattern=ID_PATTERN)]
IdFilter = Annotated[str | None, Query(pattern=ID_PATTERN)]

Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]
Now = Annotated[datetime, Depends(now_of)]
Reviewer = Annotated[Principal, Depends(require(Role.REVIEWER))]
Officer = Annotated[Principal, Depends(require(*OFFICERS))]


def statuses(wanted: StatusFilter) -> tuple[TaskStatus, ...]:
    return () if wanted == "all" else (TaskStatus(wanted),)


def install_error_handlers(app: FastAPI) -> None:
    """Use-case refusals become 404, 409 and 422 (the latter naming the field at fault)."""

    async def not_found(_request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_404_NOT_FOUND)

    async def conflict(_request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_409_CONFLICT)

    async def invalid(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, service.InvalidError)
        detail = [
            {"loc": ["body", *problem.loc], "msg": problem.message, "type": problem.kind}
            for problem in error.problems
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    app.add_exception_handler(service.NotFoundError, not_found)
    app.add_exception_handler(service.ConflictError, conflict)
    app.add_exception_handler(service.InvalidError, invalid)


# ---------------------------------------------------------------- reviewers' queue

reviewer_router = APIRouter(prefix="/v1/tasks", tags=["reviewer"])


@reviewer_router.get("", summary="My queue, soonest due first")
async def my_queue(
    principal: Reviewer,
    runtime: Runtime,
    now: Now,
    status_filter: Annotated[StatusFilter, Query(alias="status")] = "open",
    kind: TaskKind | None = None,
    program_code: IdFilter = None,
    due_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[TaskSummary]:
    where = TaskFilter(
        reviewer_id=principal.reviewer_id,
        statuses=statuses(status_filter),
        kind=kind,
        program_code=program_code,
        due_before=due_before,
        limit=limit,
        offset=offset,
    )
    async with unit_of_work(runtime.sessions) as session:
        rows = await service.queue(session, where)
    return [TaskSummary.of(task, request, now, officer=False) for task, request in rows]


@reviewer_router.get(
    "/{task_id}", summary="One of my tasks with its application and rubric", responses=NOT_FOUND
)
async def my_task(principal: Reviewer, runtime: Runtime, now: Now, task_id: TaskId) -> TaskDetail:
    assert principal.reviewer_id is not None
    async with unit_of_work(runtime.sessions) as session:
        task, request, review = await service.task_for_reviewer(
            session, principal.reviewer_id, task_id
        )
    return TaskDetail.build(task, request, review, now, officer=False)


@reviewer_router.post(
    "/{task_id}/review",
    status_code=status.HTTP_201_CREATED,
    summary="Submit scores, a recommendation and the conflict-of-interest attestation",
    responses={
        **NOT_FOUND,
        409: {"description": "Already submitted, recused, or reassigned after the deadline."},
        422: {"description": "A score out of range (named), a missing attestation, ..."},
    },
)
async def submit_review(
    principal: Reviewer, runtime: Runtime, now: Now, task_id: TaskId, body: ReviewIn
) -> TaskDetail:
    assert principal.reviewer_id is not None
    async with unit_of_work(runtime.sessions) as session:
        task, request, review = await service.submit_review(
            session, runtime.outbox, principal.reviewer_id, task_id, body, now
        )
    return TaskDetail.build(task, request, review, now, officer=False)


@reviewer_router.post(
    "/{task_id}/recuse",
    summary="Leave the task for a conflict of interest; it goes to another reviewer",
    responses={**NOT_FOUND, **CONFLICT},
)
async def recuse(
    principal: Reviewer, runtime: Runtime, now: Now, task_id: TaskId, body: RecuseIn
) -> RecuseOut:
    assert principal.reviewer_id is not None
    async with unit_of_work(runtime.sessions) as session:
        task, request, replaced = await service.recuse(
            session, runtime.outbox, principal.reviewer_id, task_id, body.reason, now
        )
    return RecuseOut(
        task=TaskSummary.of(task, request, now, officer=False), replacement_assigned=replaced
    )


# ---------------------------------------------------------------- program officers

officer_router = APIRouter(prefix="/v1", tags=["program officer"])


@officer_router.get("/reviewers", summary="Every reviewer with its open workload")
async def list_reviewers(
    _officer: Officer, runtime: Runtime, active: bool | None = None
) -> list[ReviewerOut]:
    async with unit_of_work(runtime.sessions) as session:
        return await service.all_reviewers(session, active)


@officer_router.post(
    "/reviewers",
    status_code=status.HTTP_201_CREATED,
    summary="Add a reviewer",
    responses={409: {"description": "A reviewer with this id exists."}},
)
async def create_reviewer(
    _officer: Officer, runtime: Runtime, now: Now, body: ReviewerIn
) -> ReviewerOut:
    async with unit_of_work(runtime.sessions) as session:
        return await service.create_reviewer(session, body, now)


@officer_router.get(
    "/reviewers/{reviewer_id}", summary="A reviewer and its recusals", responses=NOT_FOUND
)
async def get_reviewer(
    _officer: Officer, runtime: Runtime, reviewer_id: ReviewerIdPath
) -> ReviewerOut:
    async with unit_of_work(runtime.sessions) as session:
        return await service.reviewer(session, reviewer_id)


@officer_router.patch(
    "/reviewers/{reviewer_id}",
    summary="Change a reviewer's profile, capacity, expertise, conflicts or active flag",
    responses=NOT_FOUND,
)
async def update_reviewer(
    _officer: Officer, runtime: Runtime, now: Now, reviewer_id: ReviewerIdPath, body: ReviewerPatch
) -> ReviewerOut:
    async with unit_of_work(runtime.sessions) as session:
        return await service.update_reviewer(session, reviewer_id, body, now)


@officer_router.get("/officer/tasks", summary="All tasks, with filters")
async def all_tasks(
    _officer: Officer,
    runtime: Runtime,
    now: Now,
    status_filter: Annotated[StatusFilter, Query(alias="status")] = "all",
    reviewer_id: IdFilter = None,
    application_id: IdFilter = None,
    kind: TaskKind | None = None,
    program_code: IdFilter = None,
    overdue: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[TaskSummary]:
    where = TaskFilter(
        reviewer_id=reviewer_id,
        statuses=(TaskStatus.OPEN,) if overdue else statuses(status_filter),
        kind=kind,
        application_id=application_id,
        program_code=program_code,
        due_before=now if overdue else None,
        limit=limit,
        offset=offset,
    )
    async with unit_of_work(runtime.sessions) as session:
        rows = await service.queue(session, where)
    return [TaskSummary.of(task, request, now, officer=True) for task, request in rows]


@officer_router.get("/officer/tasks/{task_id}", summary="Any task", responses=NOT_FOUND)
async def any_task(_officer: Officer, runtime: Runtime, now: Now, task_id: TaskId) -> TaskDetail:
    async with unit_of_work(runtime.sessions) as session:
        task, request, review = await service.task_for_officer(session, task_id)
    return TaskDetail.build(task, request, review, now, officer=True)


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
    _officer: Officer, runtime: Runtime, now: Now, task_id: TaskId, body: ReassignIn
) -> TaskDetail:
    async with unit_of_work(runtime.sessions) as session:
        task = await service.officer_reassign(
            session, runtime.outbox, task_id, body.reason, body.reviewer_id, now
        )
        task, request, review = await service.task_for_officer(session, task.id)
    return TaskDetail.build(task, request, review, now, officer=True)


@officer_router.get(
    "/officer/applications/{application_id}/requests",
    summary="The review requests of an application and how far each is staffed",
    responses=NOT_FOUND,
)
async def application_requests(
    _officer: Officer, runtime: Runtime, application_id: str
) -> list[RequestOut]:
    async with unit_of_work(runtime.sessions) as session:
        found = await service.requests_of(session, application_id)
    if not found:
        raise service.NotFoundError("no reviews were requested for this application")
    return found


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
    _officer: Officer, runtime: Runtime, now: Now, request_id: RequestId, body: FillIn
) -> TaskDetail:
    async with unit_of_work(runtime.sessions) as session:
        task = await service.officer_fill(
            session, runtime.outbox, request_id, body.reviewer_id, now
        )
        task, request, review = await service.task_for_officer(session, task.id)
    return TaskDetail.build(task, request, review, now, officer=True)


@officer_router.get(
    "/officer/workload", summary="Open work, overdue tasks and turnaround per reviewer"
)
async def workload(_officer: Officer, runtime: Runtime, now: Now) -> list[WorkloadOut]:
    async with unit_of_work(runtime.sessions) as session:
        lines = await service.workload_report(session, now)
    return [WorkloadOut.of(line) for line in lines]


@officer_router.get(
    "/officer/applications/{application_id}/scores",
    summary="Reviews of an application side by side, with the spread between reviewers",
    responses=NOT_FOUND,
)
async def application_scores(
    _officer: Officer,
    runtime: Runtime,
    application_id: ApplicationId,
    threshold_bp: Annotated[int, Query(ge=0, le=10_000)] = SPREAD_FLAG_BP,
) -> ScoresOut:
    async with unit_of_work(runtime.sessions) as session:
        return await service.scores(session, application_id, threshold_bp)
