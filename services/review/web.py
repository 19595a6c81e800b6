"""The reviewer inbox at ``/inbox``: sign-in, the queue, a task, and its two forms.

A reviewer signs in by pasting its bearer token (``shared.web.Door``): the token lives in
an HttpOnly, SameSite=Strict cookie scoped to ``/inbox``, and every form carries a CSRF
value derived from it. Pages call the same use cases as the JSON API, with the same rules;
the HTML is rendered in ``pages.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.review.api import Review, TaskId
from services.review.domain import TaskStatus
from services.review.pages import PAGES, not_found_page, queue_page, task_page
from services.review.persistence import TaskFilter
from services.review.schemas import ReviewIn
from services.review.service import ReviewService
from shared.auth import Role
from shared.errors import (
    ConflictError,
    InvalidError,
    NotFoundError,
    Problem,
    field_name,
    plain_message,
)
from shared.service import Work
from shared.web import Door, Posted, Viewer, add_sign_in_routes

COOKIE: Final = "grantflow_review_token"
DOOR: Final = Door(
    "/inbox", cookie=COOKIE, roles=(Role.REVIEWER,), refusal="This inbox is for reviewers"
)
CLOSED: Final = (TaskStatus.COMPLETED, TaskStatus.RECUSED, TaskStatus.REASSIGNED)
CLOSED_SHOWN: Final = 20

router = APIRouter(prefix="/inbox", include_in_schema=False)
SIGN_IN: Final = add_sign_in_routes(router, DOOR, PAGES, who="a reviewer")


def _reviewer_id(viewer: Viewer) -> str:
    assert viewer.principal.reviewer_id is not None
    return viewer.principal.reviewer_id


Post = Annotated[Posted | HTMLResponse, Depends(SIGN_IN.posted)]


# ---------------------------------------------------------------- the queue and a task


@router.get("")
async def inbox(
    request: Request, review: Review, submitted: str = "", recused: str = ""
) -> Response:
    viewer = await SIGN_IN.viewer(request)
    if isinstance(viewer, HTMLResponse):
        return viewer
    reviewer_id = _reviewer_id(viewer)
    async with review.reading() as work:
        open_tasks = await review.queue(
            work, TaskFilter(reviewer_id=reviewer_id, statuses=(TaskStatus.OPEN,))
        )
        closed = await review.queue(work, TaskFilter(reviewer_id=reviewer_id, statuses=CLOSED))
    closed.sort(key=lambda record: record.task.closed_at or record.task.assigned_at, reverse=True)
    note = ""
    if submitted:
        note = f"Review submitted for task {submitted}. Thank you."
    elif recused:
        note = f"You recused from task {recused}; it goes to another reviewer."
    return queue_page(request, viewer, open_tasks, closed[:CLOSED_SHOWN], work.now, note)


@router.get("/tasks/{task_id}")
async def task(request: Request, review: Review, task_id: TaskId) -> Response:
    viewer = await SIGN_IN.viewer(request)
    if isinstance(viewer, HTMLResponse):
        return viewer
    return await _task(request, review, viewer, task_id)


async def _task(
    request: Request, review: ReviewService, viewer: Viewer, task_id: str, **shown: Any
) -> HTMLResponse:
    """The task page, as it is now; ``shown``: why a form came back (``task_page``)."""
    try:
        async with review.reading() as work:
            record = await review.task_for_reviewer(work, _reviewer_id(viewer), task_id)
    except NotFoundError:
        return not_found_page(request, viewer)
    return task_page(request, viewer, record, work.now, **shown)


async def _act(
    request: Request,
    review: ReviewService,
    viewer: Viewer,
    task_id: str,
    action: Callable[[Work], Awaitable[object]],
    done: str,
) -> Response:
    """Run a form's use case; refused, the task page again says why."""
    try:
        async with review.work() as work:
            await action(work)
    except NotFoundError:
        return not_found_page(request, viewer)
    except ConflictError as error:
        return await _task(request, review, viewer, task_id, note=str(error), status_code=409)
    return RedirectResponse(f"/inbox?{done}={quote(task_id)}", status_code=303)


def _submission(form: dict[str, str]) -> ReviewIn:
    scores: dict[str, int] = {}
    problems: list[Problem] = []
    for name, value in form.items():
        if not name.startswith("score."):
            continue
        criterion = name.removeprefix("score.")
        try:
            scores[criterion] = int(value.strip())
        except ValueError:
            problems.append(
                Problem(f"scores.{criterion}", f"criterion {criterion!r} needs a whole number")
            )
    if problems:
        raise InvalidError(problems)
    try:
        return ReviewIn(
            scores=scores,
            recommendation=form.get("recommendation", ""),
            comments=form.get("comments", ""),
            attest_no_conflict=bool(form.get("attest_no_conflict")),
        )
    except ValidationError as error:
        raise InvalidError(
            [Problem(field_name(e["loc"]), plain_message(dict(e))) for e in error.errors()]
        ) from error


@router.post("/tasks/{task_id}/review")
async def submit_review(request: Request, review: Review, post: Post, task_id: TaskId) -> Response:
    if isinstance(post, HTMLResponse):
        return post
    viewer, form = post.viewer, post.form

    async def submit(work: Work) -> None:
        await review.submit_review(work, _reviewer_id(viewer), task_id, _submission(form))

    try:
        return await _act(request, review, viewer, task_id, submit, "submitted")
    except InvalidError as error:
        return await _task(
            request,
            review,
            viewer,
            task_id,
            problems=error.problems,
            values=form,
            note="The review was not submitted: please correct the marked fields.",
            status_code=422,
        )


@router.post("/tasks/{task_id}/recuse")
async def recuse(request: Request, review: Review, post: Post, task_id: TaskId) -> Response:
    if isinstance(post, HTMLResponse):
        return post
    viewer = post.viewer
    reason = post.form.get("reason", "").strip()
    if len(reason) < 3:
        note = "Please give a reason for the recusal."
        return await _task(request, review, viewer, task_id, note=note, status_code=422)

    async def leave(work: Work) -> None:
        await review.recuse(work, _reviewer_id(viewer), task_id, reason[:2000])

    return await _act(request, review, viewer, task_id, leave, "recused")
