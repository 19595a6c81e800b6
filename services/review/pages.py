"""The reviewer inbox's HTML: server-rendered from ``templates/``, no script, no asset from
elsewhere, every value escaped. The routes are in ``web.py``."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from html import escape
from pathlib import Path
from string import Template
from typing import Final
from urllib.parse import quote

from fastapi.responses import HTMLResponse

from services.review.domain import RECOMMENDATIONS, TaskStatus
from services.review.persistence import ReviewRow, TaskRecord, TaskRow
from services.review.schemas import ApplicationView, ReportView
from shared.auth import Principal
from shared.errors import Problem

TEMPLATES: Final = Path(__file__).parent / "templates"
RECOMMENDATION_LABELS: Final = {
    "approve": "Approve",
    "decline": "Decline",
    "revise": "Ask for a revision",
    "changes_requested": "Request changes to the report",
}


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


class Viewer:
    """The reviewer a page is for, and the CSRF value its forms must carry."""

    def __init__(self, principal: Principal, csrf: str) -> None:
        self.principal = principal
        self.csrf = csrf

    @property
    def reviewer_id(self) -> str:
        assert self.principal.reviewer_id is not None
        return self.principal.reviewer_id


def page(
    title: str,
    content: str,
    *,
    viewer: Viewer | None = None,
    flash: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    account = ""
    if viewer is not None:
        account = (
            '<form method="post" action="/inbox/sign-out">'
            f'<span class="muted">{escape(viewer.reviewer_id)}</span> '
            f'<input type="hidden" name="csrf" value="{escape(viewer.csrf)}">'
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


def flash(message: str, kind: str = "ok") -> str:
    return f'<div class="flash {kind}" role="status">{escape(message)}</div>'


def sign_in_page(message: str = "", status_code: int = 200) -> HTMLResponse:
    return page(
        "Sign in",
        _template("signin.html").substitute(),
        flash=flash(message, "error") if message else "",
        status_code=status_code,
    )


def not_found_page(viewer: Viewer) -> HTMLResponse:
    return page(
        "Not found",
        '<section><h2>No such task in your queue</h2><p><a href="/inbox">Back</a></p></section>',
        viewer=viewer,
        status_code=404,
    )


def queue_page(
    viewer: Viewer, open_tasks: list[TaskRecord], closed: list[TaskRecord], now: datetime, note: str
) -> HTMLResponse:
    content = _template("queue.html").substitute(
        count=len(open_tasks),
        queue=_task_table(open_tasks, now, "queue", "Your queue is empty. Nothing to review."),
        closed=_task_table(closed, now, "closed", "Nothing yet."),
    )
    return page("My queue", content, viewer=viewer, flash=flash(note) if note else "")


def _task_table(records: list[TaskRecord], now: datetime, table_id: str, empty: str) -> str:
    if not records:
        return f'<p class="muted" id="{table_id}-empty">{escape(empty)}</p>'
    lines = []
    for record in records:
        task, request = record.task, record.request
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


def task_page(
    viewer: Viewer,
    record: TaskRecord,
    now: datetime,
    *,
    problems: list[Problem] | None = None,
    values: dict[str, str] | None = None,
    note: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    """One task: the application (or report), and the review form while the task is open.

    ``note`` is an error to show above it; ``problems`` and ``values`` come from a form
    that was refused, so that it comes back filled in, with each problem at its field.
    """
    task = record.task
    view = ApplicationView.of(record.request, officer=False)
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
        work = _review_form(viewer, record, problems or [], values or {})
    else:
        work = _closed(task, record.review)
    content = _template("task.html").substitute(
        heading=escape(view.title),
        facts=facts_html,
        summary=escape(view.summary),
        report=_report(view.report) if view.report else "",
        work=work,
    )
    return page(
        view.title,
        content,
        viewer=viewer,
        flash=flash(note, "error") if note else "",
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
    viewer: Viewer, record: TaskRecord, problems: list[Problem], values: dict[str, str]
) -> str:
    by_field: dict[str, list[str]] = {}
    for problem in problems:
        by_field.setdefault(problem.field, []).append(problem.message)
    criteria = []
    for criterion in record.request.rubric.criteria:
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
        for value in RECOMMENDATIONS[record.task.kind]
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
        task_id=quote(record.task.id),
        csrf=escape(viewer.csrf),
        criteria="\n".join(criteria),
        recommendations=recommendations,
        comments=escape(values.get("comments", "")),
        attested=" checked" if values.get("attest_no_conflict") else "",
        errors=errors,
    )
