"""The reviewer inbox at ``/inbox``: server-rendered HTML, no script, no asset from elsewhere.

A reviewer signs in by pasting its bearer token; the token lives in an HttpOnly,
SameSite=Strict cookie scoped to ``/inbox``, and every form carries a CSRF value derived
from it. Pages call the same use cases as the JSON API, with the same rules.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from functools import cache
from html import escape
from pathlib import Path
from string import Template
from typing import Final
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.review import service
from services.review.api import Now, Runtime, TaskId
from services.review.domain import RECOMMENDATIONS, Problem, TaskStatus
from services.review.persistence import RequestRow, ReviewRow, TaskFilter, TaskRow
from services.review.schemas import ApplicationView, ReportView, ReviewIn
from shared.auth import Auth, InvalidTokenError, Principal, Role, SigningKeysUnavailableError
from shared.db import unit_of_work
from shared.service import ServiceRuntime

COOKIE: Final = "grantflow_review_token"
TEMPLATES: Final = Path(__file__).parent / "templates"
RECOMMENDATION_LABELS: Final = {
    "approve": "Approve",
    "decline": "Decline",
    "revise": "Ask for a revision",
    "changes_requested": "Request changes to the report",
}

router = APIRouter(prefix="/inbox", include_in_schema=False)


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def _page(
    title: str,
    content: str,
    *,
    principal: Principal | None = None,
    csrf: str = "",
    flash: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    account = ""
    if principal is not None:
        account = (
            '<form method="post" action="/inbox/sign-out">'
            f'<span class="muted">{escape(principal.reviewer_id or "")}</span> '
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            '<button class="secondary" type="submit" id="sign-out">Sign out</button></form>'
        )
    html = _template("layout.html").substitute(
        title=escape(title), account=account, flash=flash, content=content
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _flash(message: str, kind: str = "ok") -> str:
    return f'<div class="flash {kind}" role="status">{escape(message)}</div>'


def _csrf(runtime: ServiceRuntime, token: str) -> str:
    key = runtime.settings.jwt_secret.get_secret_value().encode()
    return hmac.new(key, b"inbox-csrf:" + token.encode(), hashlib.sha256).hexdigest()[:40]


class SignedIn:
    """The reviewer behind the cookie, and the CSRF value its forms must carry."""

    def __init__(self, principal: Principal, csrf: str) -> None:
        self.principal = principal
        self.csrf = csrf

    @property
    def reviewer_id(self) -> str:
        assert self.principal.reviewer_id is not None
        return self.principal.reviewer_id


class _SignInNeededError(Exception):
    def __init__(self, message: str = "", status_code: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


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


async def signed_in(request: Request, runtime: Runtime) -> SignedIn:
    token = request.cookies.get(COOKIE)
    if not token:
        raise _SignInNeededError()
    try:
        principal = await _verify(request, token)
    except InvalidTokenError as error:
        raise _SignInNeededError(f"Please sign in again: {error}.") from error
    return SignedIn(principal, _csrf(runtime, token))


def sign_in_page(message: str = "", status_code: int = 200) -> HTMLResponse:
    response = _page(
        "Sign in",
        _template("signin.html").substitute(),
        flash=_flash(message, "error") if message else "",
        status_code=status_code,
    )
    if status_code in (401, 403):  # the cookie's token is no good: forget it
        response.delete_cookie(COOKIE, path="/inbox")
    return response


async def _form(request: Request) -> dict[str, str]:
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


def _check_csrf(session: SignedIn, form: dict[str, str]) -> None:
    if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
        raise _SignInNeededError("The form expired; please sign in again.", 403)


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
async def sign_out(request: Request, runtime: Runtime) -> Response:
    try:
        _check_csrf(await signed_in(request, runtime), await _form(request))
    except _SignInNeededError as error:
        return sign_in_page(error.message, error.status_code)
    response = RedirectResponse("/inbox", status_code=303)
    response.delete_cookie(COOKIE, path="/inbox")
    return response


# ---------------------------------------------------------------- the queue


@router.get("")
async def inbox(
    request: Request, runtime: Runtime, now: Now, submitted: str = "", recused: str = ""
) -> Response:
    try:
        session = await signed_in(request, runtime)
    except _SignInNeededError as error:
        return sign_in_page(error.message, 200 if not error.message else error.status_code)
    async with unit_of_work(runtime.sessions) as db:
        open_tasks = await service.queue(
            db, TaskFilter(reviewer_id=session.reviewer_id, statuses=(TaskStatus.OPEN,))
        )
        closed = await service.queue(
            db,
            TaskFilter(
                reviewer_id=session.reviewer_id,
                statuses=(TaskStatus.COMPLETED, TaskStatus.RECUSED, TaskStatus.REASSIGNED),
            ),
        )
    flash = ""
    if submitted:
        flash = _flash(f"Review submitted for task {submitted}. Thank you.")
    elif recused:
        flash = _flash(f"You recused from task {recused}; it goes to another reviewer.")
    closed.sort(key=lambda pair: pair[0].closed_at or pair[0].assigned_at, reverse=True)
    content = _template("queue.html").substitute(
        count=len(open_tasks),
        queue=_task_table(open_tasks, now, "queue", "Your queue is empty. Nothing to review."),
        closed=_task_table(closed[:20], now, "closed", "Nothing yet."),
    )
    return _page("My queue", content, principal=session.principal, csrf=session.csrf, flash=flash)


def _task_table(
    rows: list[tuple[TaskRow, RequestRow]], now: datetime, table_id: str, empty: str
) -> str:
    if not rows:
        return f'<p class="muted" id="{table_id}-empty">{escape(empty)}</p>'
    lines = []
    for task, request in rows:
        view = ApplicationView.of(request, officer=False)
        due = f"{task.due_at:%Y-%m-%d %H:%M} UTC"
        if task.status is TaskStatus.OPEN and task.due_at < now:
            due = f'<span class="overdue">{due} (overdue)</span>'
        state = "" if task.status is TaskStatus.OPEN else f" · {task.status.value}"
        lines.append(
            f'<tr data-task-id="{escape(task.id)}">'
            f'<td><a href="/inbox/tasks/{quote(task.id)}">{escape(view.title)}</a></td>'
            f"<td>{escape(task.kind.value)}{escape(state)}</td>"
            f"<td>{escape(request.program_code)}</td>"
            f"<td>{escape(task.application_id)} · round {task.round}</td>"
            f"<td>{due}</td></tr>"
        )
    return (
        f'<table id="{table_id}"><thead><tr><th>Title</th><th>Kind</th><th>Program</th>'
        f"<th>Application</th><th>Due</th></tr></thead><tbody>{''.join(lines)}</tbody></table>"
    )


# ---------------------------------------------------------------- one task


@router.get("/tasks/{task_id}")
async def task_page(request: Request, runtime: Runtime, now: Now, task_id: TaskId) -> Response:
    try:
        session = await signed_in(request, runtime)
    except _SignInNeededError as error:
        return sign_in_page(error.message or "Please sign in.", error.status_code)
    try:
        async with unit_of_work(runtime.sessions) as db:
            task, review_request, review = await service.task_for_reviewer(
                db, session.reviewer_id, task_id
            )
    except service.NotFoundError:
        return _not_found(session)
    return _task_view(session, task, review_request, review, now)


def _not_found(session: SignedIn) -> HTMLResponse:
    return _page(
        "Not found",
        '<section><h2>No such task in your queue</h2><p><a href="/inbox">Back</a></p></section>',
        principal=session.principal,
        csrf=session.csrf,
        status_code=404,
    )


def _task_view(
    session: SignedIn,
    task: TaskRow,
    request: RequestRow,
    review: ReviewRow | None,
    now: datetime,
    *,
    problems: list[Problem] | None = None,
    values: dict[str, str] | None = None,
    flash: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    view = ApplicationView.of(request, officer=False)
    facts: list[tuple[str, str]] = [
        ("Application", view.application_id),
        ("Round", str(task.round)),
        ("Program", view.program_code),
        ("Focus area", view.focus_area or "—"),
        (
            "Applicant",
            "withheld (blind review)"
            if view.identity_withheld
            else f"{view.member_id} ({view.member_city or 'city unknown'})",
        ),
        (
            "Partner",
            f"{view.partner_city or 'withheld'}, {view.partner_country or '—'}",
        ),
        ("Requested", str(view.requested) if view.requested else "—"),
        ("Due", f"{task.due_at:%Y-%m-%d %H:%M} UTC" + (" (overdue)" if task.due_at < now else "")),
        ("Status", task.status.value),
    ]
    if view.report_id:
        facts.insert(1, ("Report", view.report_id))
    facts_html = "\n".join(
        f"    <dt>{escape(name)}</dt><dd>{escape(value)}</dd>" for name, value in facts
    )
    if task.status is TaskStatus.OPEN:
        work = _review_form(session, task, request, problems or [], values or {})
    else:
        work = _closed(task, review)
    content = _template("task.html").substitute(
        heading=escape(view.title),
        facts=facts_html,
        summary=escape(view.summary),
        report=_report(view.report) if view.report else "",
        work=work,
    )
    return _page(
        view.title,
        content,
        principal=session.principal,
        csrf=session.csrf,
        flash=flash,
        status_code=status_code,
    )


def _report(report: ReportView) -> str:
    """The report a report review is about, as the member submitted it."""
    heading = (
        f"<h2>The report (revision {report.revision}, submitted "
        f"{report.submitted_at:%Y-%m-%d})</h2>"
        f"<p>Actual spending: {escape(str(report.actual_spending))}</p>"
    )
    content = report.content
    if content is None:
        missing = "<p>This report was published without its text; ask the reporting team.</p>"
        return f'<section id="report">{heading}{missing}</section>'
    activities = "".join(
        f"<li>{activity.held_on:%Y-%m-%d}"
        + (f" to {activity.ends_on:%Y-%m-%d}" if activity.ends_on else "")
        + f": <strong>{escape(activity.title)}</strong>"
        + (f" — {escape(activity.description)}" if activity.description else "")
        + "</li>"
        for activity in content.activities
    )
    outcomes = content.outcomes
    counted = (
        ("Agreements signed", outcomes.agreements_signed),
        ("Trade leads", outcomes.trade_leads),
        ("Jobs created", outcomes.jobs_created),
        ("Students exchanged", outcomes.students_exchanged),
        ("Follow-up projects", outcomes.follow_up_projects),
    )
    spending = "".join(
        f"<tr><td>{escape(line.category)}</td><td>{escape(line.description)}</td>"
        f"<td>{escape(str(line.amount))}</td><td>{escape(str(line.converted))}</td></tr>"
        for line in content.spending
    )
    attachments = (
        "<p>Attachments: "
        + ", ".join(escape(attachment.name) for attachment in content.attachments)
        + "</p>"
        if content.attachments
        else ""
    )
    return (
        f'<section id="report">{heading}'
        f"<p>Participants: {content.participants.adults} adults, "
        f"{content.participants.youth} youth</p>"
        f"<h3>Activities</h3><ul>{activities}</ul>"
        "<h3>Outcomes</h3><dl>"
        + "".join(f"<dt>{name}</dt><dd>{count}</dd>" for name, count in counted)
        + "</dl>"
        + (f"<p>{escape(outcomes.narrative)}</p>" if outcomes.narrative else "")
        + "<h3>Spending</h3><table><thead><tr><th>Category</th><th>Description</th>"
        f"<th>Spent</th><th>In the award currency</th></tr></thead><tbody>{spending}</tbody>"
        f"</table><h3>Lessons learned</h3><p>{escape(content.lessons_learned)}</p>"
        f"{attachments}</section>"
    )


def _closed(task: TaskRow, review: ReviewRow | None) -> str:
    if review is not None:
        scores = "".join(
            f"<tr><td>{escape(name)}</td><td>{score}</td></tr>"
            for name, score in review.scores.items()
        )
        return (
            '<section id="submitted-review"><h2>Your submitted review</h2>'
            f"<table><tbody>{scores}</tbody></table>"
            f"<p>Weighted total: {review.weighted_total_bp / 100:.2f}% · "
            f"recommendation: {escape(review.recommendation)}</p>"
            f"<p>{escape(review.comments)}</p></section>"
        )
    reason = f": {task.close_reason}" if task.close_reason else ""
    return (
        '<section id="closed-task"><h2>This task is closed</h2>'
        f"<p>It was {escape(task.status.value)}{escape(reason)}. It can no longer be "
        "submitted.</p></section>"
    )


def _review_form(
    session: SignedIn,
    task: TaskRow,
    request: RequestRow,
    problems: list[Problem],
    values: dict[str, str],
) -> str:
    by_field: dict[str, list[str]] = {}
    for problem in problems:
        by_field.setdefault(".".join(str(part) for part in problem.loc), []).append(problem.message)
    criteria = []
    for criterion in request.rubric.criteria:
        name = f"score.{criterion.name}"
        criterion_errors = by_field.pop(f"scores.{criterion.name}", [])
        error_html = "".join(f'<p class="errors">{escape(e)}</p>' for e in criterion_errors)
        criteria.append(
            '      <div class="criterion">'
            f'<label for="{escape(name)}">{escape(criterion.name)} '
            f"<small>{escape(criterion.description)} (weight {criterion.weight}; "
            f"{criterion.min_score} to {criterion.max_score})</small>{error_html}</label>"
            f'<input type="number" id="{escape(name)}" name="{escape(name)}" '
            f'min="{criterion.min_score}" max="{criterion.max_score}" step="1" required '
            f'value="{escape(values.get(name, ""))}"></div>'
        )
    chosen = values.get("recommendation", "")
    recommendations = "\n".join(
        f'      <label><input type="radio" name="recommendation" value="{value}" required'
        f"{' checked' if value == chosen else ''}> {escape(RECOMMENDATION_LABELS[value])}</label>"
        for value in RECOMMENDATIONS[task.kind]
    )
    remaining = [message for messages in by_field.values() for message in messages]
    errors = (
        '<div class="flash error" role="alert" id="form-errors"><ul>'
        + "".join(f"<li>{escape(message)}</li>" for message in remaining)
        + "</ul></div>"
        if problems
        else ""
    )
    return _template("review_form.html").substitute(
        task_id=quote(task.id),
        csrf=escape(session.csrf),
        criteria="\n".join(criteria),
        recommendations=recommendations,
        comments=escape(values.get("comments", "")),
        attested=" checked" if values.get("attest_no_conflict") else "",
        errors=errors,
    )


def _submission(form: dict[str, str]) -> ReviewIn | list[Problem]:
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
                Problem(("scores", criterion), f"criterion {criterion!r} needs a whole number")
            )
    if problems:
        return problems
    try:
        return ReviewIn(
            scores=scores,
            recommendation=form.get("recommendation", ""),
            comments=form.get("comments", ""),
            attest_no_conflict=bool(form.get("attest_no_conflict")),
        )
    except ValidationError as error:
        return [
            Problem(tuple(str(part) for part in e["loc"]), f"{e['loc'][0]}: {e['msg']}")
            for e in error.errors()
        ]


@router.post("/tasks/{task_id}/review")
async def submit_review(request: Request, runtime: Runtime, now: Now, task_id: TaskId) -> Response:
    try:
        session = await signed_in(request, runtime)
        form = await _form(request)
        _check_csrf(session, form)
    except _SignInNeededError as error:
        return sign_in_page(error.message or "Please sign in.", error.status_code)
    try:
        async with unit_of_work(runtime.sessions) as db:
            task, review_request, review = await service.task_for_reviewer(
                db, session.reviewer_id, task_id
            )
        submission = _submission(form)
        if isinstance(submission, list):
            raise service.InvalidError(submission)
        async with unit_of_work(runtime.sessions) as db:
            await service.submit_review(
                db, runtime.outbox, session.reviewer_id, task_id, submission, now
            )
    except service.NotFoundError:
        return _not_found(session)
    except service.InvalidError as error:
        return _task_view(
            session,
            task,
            review_request,
            review,
            now,
            problems=error.problems,
            values=form,
            flash=_flash(
                "The review was not submitted: please correct the marked fields.", "error"
            ),
            status_code=422,
        )
    except service.ConflictError as error:
        async with unit_of_work(runtime.sessions) as db:
            task, review_request, review = await service.task_for_reviewer(
                db, session.reviewer_id, task_id
            )
        return _task_view(
            session,
            task,
            review_request,
            review,
            now,
            flash=_flash(str(error), "error"),
            status_code=409,
        )
    return RedirectResponse(f"/inbox?submitted={quote(task_id)}", status_code=303)


@router.post("/tasks/{task_id}/recuse")
async def recuse(request: Request, runtime: Runtime, now: Now, task_id: TaskId) -> Response:
    try:
        session = await signed_in(request, runtime)
        form = await _form(request)
        _check_csrf(session, form)
    except _SignInNeededError as error:
        return sign_in_page(error.message or "Please sign in.", error.status_code)
    reason = form.get("reason", "").strip()
    try:
        if len(reason) < 3:
            async with unit_of_work(runtime.sessions) as db:
                task, review_request, review = await service.task_for_reviewer(
                    db, session.reviewer_id, task_id
                )
            return _task_view(
                session,
                task,
                review_request,
                review,
                now,
                flash=_flash("Please give a reason for the recusal.", "error"),
                status_code=422,
            )
        async with unit_of_work(runtime.sessions) as db:
            await service.recuse(
                db, runtime.outbox, session.reviewer_id, task_id, reason[:2000], now
            )
    except service.NotFoundError:
        return _not_found(session)
    except service.ConflictError as error:
        async with unit_of_work(runtime.sessions) as db:
            task, review_request, review = await service.task_for_reviewer(
                db, session.reviewer_id, task_id
            )
        return _task_view(
            session,
            task,
            review_request,
            review,
            now,
            flash=_flash(str(error), "error"),
            status_code=409,
        )
    return RedirectResponse(f"/inbox?recused={quote(task_id)}", status_code=303)
