"""The officer console at ``/console``: the attention list, applications stuck in a stage,
one application's whole story, and each lifecycle decision behind a confirmation step.

Officers sign in with their bearer token as reviewers do at ``/inbox`` (``shared.web``).
The pages call the lifecycle API's own handlers and the attention list's own service, so
a decision the workflow refuses comes back with the reason the API would give (409).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from temporalio.client import Client
from temporalio.service import RPCError

from shared.auth import OFFICERS
from shared.contracts.workflows import EscalationKind
from shared.errors import ConflictError, NotFoundError
from shared.web import Door, Pages, Viewer, add_sign_in_routes
from shared.web.forms import Problems
from workflows.attention.domain import KIND_WORDS
from workflows.attention.service import AttentionService
from workflows.console.actions import FormProblemsError, decision
from workflows.funding import api
from workflows.funding.models import Stage

DOOR: Final = Door(
    "/console",
    cookie="grantflow_console_token",
    roles=OFFICERS,
    refusal="This console is for program officers",
)
PAGES: Final = Pages(Path(__file__).parent / "templates", title="Officer console", home="/console")
STUCK_SHOWN: Final = 50
OUTCOME_LABELS: Final = {
    "awarded": "Award",
    "declined": "Decline",
    "revision_requested": "Ask for a revision",
}

router = APIRouter(prefix="/console", include_in_schema=False)
SIGN_IN: Final = add_sign_in_routes(router, DOOR, PAGES, who="a program officer")


def _temporal(request: Request) -> Client | None:
    client: Client | None = getattr(request.app.state, "temporal", None)
    return client


@router.get("")
async def home(
    request: Request,
    kind: Annotated[EscalationKind | None, Query()] = None,
    stage: Annotated[Stage | None, Query()] = None,
    days: Annotated[int, Query(ge=0, le=3650)] = 7,
    program: Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{0,40}$")] = "",
) -> Response:
    viewer = await SIGN_IN.viewer(request)
    if isinstance(viewer, HTMLResponse):
        return viewer
    attention: AttentionService = request.app.state.service
    async with attention.reading() as work:
        waiting = await attention.attention(work, kind=kind, limit=200, offset=0)
    stuck: api.StuckApplications | None = None
    stuck_problem = ""
    client = _temporal(request)
    if client is None:
        stuck_problem = "The lifecycles cannot be searched: Temporal is not connected yet."
    else:
        try:
            stuck = await api.stuck_applications(
                viewer.principal, client, stage, days, program or None, STUCK_SHOWN, 0
            )
        except RPCError as error:
            stuck_problem = f"The lifecycles cannot be searched right now: {error.message}."
    return PAGES.render(
        request,
        "home.html",
        page_title="Attention list",
        viewer=viewer,
        waiting=waiting,
        kind=kind,
        kinds=KIND_WORDS,
        stages=list(Stage),
        stage=stage,
        days=days,
        program=program,
        stuck=stuck,
        stuck_problem=stuck_problem,
    )


async def _story(
    request: Request,
    viewer: Viewer,
    application_id: str,
    *,
    status_code: int = 200,
    **shown: Any,
) -> HTMLResponse:
    """One application's page; ``shown``: a flash, or a refused form's problems and values."""
    client = _temporal(request)
    if client is None:
        return _missing(request, viewer, "Temporal is not connected yet; try again shortly.", 503)
    try:
        view = await api.read_lifecycle(application_id, viewer.principal, client)
    except NotFoundError:
        return _missing(request, viewer, f"No application {application_id} has a lifecycle.", 404)
    attention: AttentionService = request.app.state.service
    async with attention.reading() as work:
        everything = await attention.attention(work, include_cleared=True, limit=500, offset=0)
    items = [item for item in everything.items if item.application_id == application_id]
    shown.setdefault("problems", Problems())
    shown.setdefault("values", {})
    shown.setdefault("acted", "")
    return PAGES.render(
        request,
        "application.html",
        status_code=status_code,
        page_title=f"Application {application_id}",
        viewer=viewer,
        view=view,
        items=items,
        kinds=KIND_WORDS,
        outcomes=OUTCOME_LABELS,
        **shown,
    )


def _missing(request: Request, viewer: Viewer, message: str, status_code: int) -> HTMLResponse:
    return PAGES.render(
        request,
        "missing.html",
        status_code=status_code,
        page_title="Not found",
        viewer=viewer,
        message=message,
    )


@router.get("/applications/{application_id}")
async def application(request: Request, application_id: api.ApplicationId) -> Response:
    viewer = await SIGN_IN.viewer(request)
    if isinstance(viewer, HTMLResponse):
        return viewer
    return await _story(request, viewer, application_id)


@router.post("/applications/{application_id}/{action}")
async def decide(request: Request, application_id: api.ApplicationId, action: str) -> Response:
    """A decision form: first the confirmation page, then (confirmed) the decision."""
    posted = await SIGN_IN.posted(request)
    if isinstance(posted, HTMLResponse):
        return posted
    viewer, form = posted.viewer, posted.form
    client = _temporal(request)
    if client is None:
        return _missing(request, viewer, "Temporal is not connected yet; try again shortly.", 503)
    try:
        view = await api.read_lifecycle(application_id, viewer.principal, client)
        chosen = decision(action, form, view)
    except NotFoundError:
        return _missing(request, viewer, f"No application {application_id} has a lifecycle.", 404)
    except FormProblemsError as error:
        return await _story(
            request,
            viewer,
            application_id,
            status_code=422,
            problems=error.problems,
            values=form,
            acted=action,
            flash="Nothing was done: please correct the marked fields.",
            flash_kind="error",
        )
    if form.get("confirmed") != "yes":
        kept = {k: v for k, v in form.items() if k not in ("csrf", "confirmed")}
        return PAGES.render(
            request,
            "confirm.html",
            page_title="Please confirm",
            viewer=viewer,
            view=view,
            words=chosen.words,
            action=f"/console/applications/{quote(application_id)}/{quote(action)}",
            kept=kept,
        )
    try:
        message = await chosen(viewer.principal, client)
    except ConflictError as error:
        return await _story(
            request,
            viewer,
            application_id,
            status_code=409,
            flash=f"The lifecycle refused: {error}.",
            flash_kind="error",
            values=form,
            acted=action,
        )
    return await _story(request, viewer, application_id, flash=message)


@router.get("/go")
async def go(application_id: Annotated[str, Query(max_length=100)] = "") -> Response:
    """The id typed into the home page's box, as the application's page."""
    return RedirectResponse(f"/console/applications/{quote(application_id.strip(), safe='')}", 303)
