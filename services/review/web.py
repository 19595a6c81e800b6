"""The reviewer inbox at ``/inbox``: sign-in, the queue, a task, and its two forms.

A reviewer signs in by pasting its bearer token; the token lives in an HttpOnly,
SameSite=Strict cookie scoped to ``/inbox``, and every form carries a CSRF value derived
from it. Pages call the same use cases as the JSON API, with the same rules; the HTML is
built in ``pages.py``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.review.api import Review, TaskId
from services.review.domain import TaskStatus
from services.review.pages import (
    Viewer,
    not_found_page,
    queue_page,
    sign_in_page,
    task_page,
)
from services.review.persistence import TaskFilter
from services.review.schemas import ReviewIn
from services.review.service import ReviewService
from shared.auth import Auth, InvalidTokenError, Principal, Role, SigningKeysUnavailableError
from shared.errors import (
    ConflictError,
    InvalidError,
    NotFoundError,
    Problem,
    field_name,
    plain_message,
)
from shared.service import Work

COOKIE: Final = "grantflow_review_token"
CLOSED: Final = (TaskStatus.COMPLETED, TaskStatus.RECUSED, TaskStatus.REASSIGNED)
CLOSED_SHOWN: Final = 20

router = APIRouter(prefix="/inbox", include_in_schema=False)


class _SignInNeededError(Exception):
    def __init__(self, message: str = "", status_code: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


def _sign_in_again(error: _SignInNeededError, default: str = "") -> HTMLResponse:
    response = sign_in_page(error.message or default, error.status_code)
    if error.status_code in (401, 403):  # the cookie's token is no good: forget it
        response.delete_cookie(COOKIE, path="/inbox")
    return response


def _csrf(review: ReviewService, token: str) -> str:
    key = review.runtime.settings.link_secret.get_secret_value().encode()
    return hmac.new(key, b"inbox-csrf:" + token.encode(), hashlib.sha256).hexdigest()[:40]


async def _verify(request: Request, token: str) -> Principal:
    auth = request.app.state.auth
    assert isinstance(auth, Auth)
    try:
        if auth.verifier.fetches_keys:  # PyJWKClient fetches over blocking urllib
            principal = await run_in_threadpool(auth.verifier.verify, token)
        else:
            principal = auth.verifier.verify(token)
    except SigningKeysUnavailableError as error:
        raise _SignInNeededError(
            "Tokens cannot be checked right now; please try again later.", 503
        ) from error
    if principal.role is not Role.REVIEWER:
        raise _SignInNeededError(
            f"This inbox is for reviewers; a {principal.role.value} token cannot sign in.", 403
        )
    return principal


async def _viewer(request: Request, review: ReviewService) -> Viewer:
    token = request.cookies.get(COOKIE)
    if not token:
        raise _SignInNeededError()
    try:
        principal = await _verify(request, token)
    except InvalidTokenError as error:
        raise _SignInNeededError(f"Please sign in again: {error}.") from error
    return Viewer(principal, _csrf(review, token))


async def _form(request: Request) -> dict[str, str]:
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


class Posted:
    """A form posted by a signed-in reviewer, its CSRF value checked."""

    def __init__(self, viewer: Viewer, form: dict[str, str]) -> None:
        self.viewer = viewer
        self.form = form


async def _posted(request: Request, review: Review) -> Posted | HTMLResponse:
    try:
        viewer = await _viewer(request, review)
        form = await _form(request)
        if not hmac.compare_digest(form.get("csrf", ""), viewer.csrf):
            raise _SignInNeededError("The form expired; please sign in again.", 403)
    except _SignInNeededError as error:
        return _sign_in_again(error, "Please sign in.")
    return Posted(viewer, form)


Post = Annotated[Posted | HTMLResponse, Depends(_posted)]


# ---------------------------------------------------------------- sign in and out


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    token = "".join((await _form(request)).get("token", "").split())
    if token.lower().startswith("bearer"):
        token = token[len("bearer") :]
    try:
        await _verify(request, token)
    except InvalidTokenError as error:
        return sign_in_page(f"That token cannot be used: {error}.", 401)
    except _SignInNeededError as error:
        return sign_in_page(error.message, error.status_code)
    response = RedirectResponse("/inbox", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        path="/inbox",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/sign-out")
async def sign_out(post: Post) -> Response:
    if isinstance(post, HTMLResponse):
        return post
    response = RedirectResponse("/inbox", status_code=303)
    response.delete_cookie(COOKIE, path="/inbox")
    return response


# ---------------------------------------------------------------- the queue and a task


@router.get("")
async def inbox(
    request: Request, review: Review, submitted: str = "", recused: str = ""
) -> Response:
    try:
        viewer = await _viewer(request, review)
    except _SignInNeededError as error:
        # No cookie at all is no error: just the sign-in form.
        return _sign_in_again(error) if error.message else sign_in_page()
    async with review.reading() as work:
        open_tasks = await review.queue(
            work, TaskFilter(reviewer_id=viewer.reviewer_id, statuses=(TaskStatus.OPEN,))
        )
        closed = await review.queue(
            work, TaskFilter(reviewer_id=viewer.reviewer_id, statuses=CLOSED)
        )
    closed.sort(key=lambda record: record.task.closed_at or record.task.assigned_at, reverse=True)
    note = ""
    if submitted:
        note = f"Review submitted for task {submitted}. Thank you."
    elif recused:
        note = f"You recused from task {recused}; it goes to another reviewer."
    return queue_page(viewer, open_tasks, closed[:CLOSED_SHOWN], work.now, note)


@router.get("/tasks/{task_id}")
async def task(request: Request, review: Review, task_id: TaskId) -> Response:
    try:
        viewer = await _viewer(request, review)
    except _SignInNeededError as error:
        return _sign_in_again(error, "Please sign in.")
    return await _task(review, viewer, task_id)


async def _task(review: ReviewService, viewer: Viewer, task_id: str, **shown: Any) -> HTMLResponse:
    """The task page, as it is now; ``shown``: why a form came back (``task_page``)."""
    try:
        async with review.reading() as work:
            record = await review.task_for_reviewer(work, viewer.reviewer_id, task_id)
    except NotFoundError:
        return not_found_page(viewer)
    return task_page(viewer, record, work.now, **shown)


async def _act(
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
        return not_found_page(viewer)
    except ConflictError as error:
        return await _task(review, viewer, task_id, note=str(error), status_code=409)
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
async def submit_review(review: Review, post: Post, task_id: TaskId) -> Response:
    if isinstance(post, HTMLResponse):
        return post
    viewer, form = post.viewer, post.form

    async def submit(work: Work) -> None:
        await review.submit_review(work, viewer.reviewer_id, task_id, _submission(form))

    try:
        return await _act(review, viewer, task_id, submit, "submitted")
    except InvalidError as error:
        return await _task(
            review,
            viewer,
            task_id,
            problems=error.problems,
            values=form,
            note="The review was not submitted: please correct the marked fields.",
            status_code=422,
        )


@router.post("/tasks/{task_id}/recuse")
async def recuse(review: Review, post: Post, task_id: TaskId) -> Response:
    if isinstance(post, HTMLResponse):
        return post
    viewer = post.viewer
    reason = post.form.get("reason", "").strip()
    if len(reason) < 3:
        note = "Please give a reason for the recusal."
        return await _task(review, viewer, task_id, note=note, status_code=422)

    async def leave(work: Work) -> None:
        await review.recuse(work, viewer.reviewer_id, task_id, reason[:2000])

    return await _act(review, viewer, task_id, leave, "recused")
