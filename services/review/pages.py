"""The reviewer inbox's HTML: Jinja2 templates in ``templates/`` on the shared layout
(``shared.web``), every value escaped. The routes are in ``web.py``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Final

from fastapi import Request
from fastapi.responses import HTMLResponse

from services.review.domain import RECOMMENDATIONS, TaskStatus
from services.review.persistence import TaskRecord
from services.review.schemas import ApplicationView
from shared.errors import Problem
from shared.web import Pages, Viewer
from shared.web.forms import Problems

PAGES: Final = Pages(Path(__file__).parent / "templates", title="Review inbox", home="/inbox")
RECOMMENDATION_LABELS: Final = {
    "approve": "Approve",
    "decline": "Decline",
    "revise": "Ask for a revision",
    "changes_requested": "Request changes to the report",
}


def not_found_page(request: Request, viewer: Viewer) -> HTMLResponse:
    return PAGES.render(
        request, "inbox_missing.html", status_code=404, page_title="Not found", viewer=viewer
    )


def queue_page(
    request: Request,
    viewer: Viewer,
    open_tasks: list[TaskRecord],
    closed: list[TaskRecord],
    now: datetime,
    note: str,
) -> HTMLResponse:
    return PAGES.render(
        request,
        "inbox_queue.html",
        page_title="My queue",
        viewer=viewer,
        flash=note,
        open_rows=_rows(open_tasks, now),
        closed_rows=_rows(closed, now),
    )


def _rows(records: list[TaskRecord], now: datetime) -> list[dict[str, object]]:
    rows = []
    for record in records:
        task, request = record.task, record.request
        is_open = task.status is TaskStatus.OPEN
        rows.append(
            {
                "id": task.id,
                "title": ApplicationView.of(request, officer=False).title,
                "kind": task.kind.value + ("" if is_open else f" · {task.status.value}"),
                "program": request.program_code,
                "application": f"{task.application_id} · round {task.round}",
                "due": f"{task.due_at:%Y-%m-%d %H:%M} UTC",
                "overdue": is_open and task.due_at < now,
            }
        )
    return rows


def task_page(
    request: Request,
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
        ("Partner", f"{view.partner_city or 'withheld'}, {view.partner_country or '—'}"),
        ("Requested", str(view.requested) if view.requested else "—"),
        ("Due", f"{task.due_at:%Y-%m-%d %H:%M} UTC" + (" (overdue)" if task.due_at < now else "")),
        ("Status", task.status.value),
    ]
    if view.report_id:
        facts.insert(1, ("Report", view.report_id))
    found = Problems()
    for problem in problems or []:
        # The form names a criterion's input score.<name>; the service says scores.<name>.
        field = problem.field
        if field.startswith("scores."):
            field = "score." + field.removeprefix("scores.")
        found.add(field, problem.message)
    criteria = [f"score.{criterion.name}" for criterion in record.request.rubric.criteria]
    return PAGES.render(
        request,
        "inbox_task.html",
        status_code=status_code,
        page_title=view.title,
        viewer=viewer,
        flash=note,
        flash_kind="error",
        task=task,
        view=view,
        facts=facts,
        review=record.review,
        criteria=record.request.rubric.criteria,
        recommendations=[
            (value, RECOMMENDATION_LABELS[value]) for value in RECOMMENDATIONS[task.kind]
        ],
        is_open=task.status is TaskStatus.OPEN,
        problems=found,
        elsewhere=found.elsewhere([*criteria, "recommendation", "comments"]),
        values=values or {},
    )
