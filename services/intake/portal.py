"""The applicant portal at ``/portal``: my applications, a draft form with the submission
checks beside its fields, submit, the status timeline, withdraw, and amendments.

Applicants sign in with their bearer token as reviewers do at ``/inbox`` (``shared.web``).
The pages call the use cases the JSON API calls, with the same rules; a refused form comes
back as it was typed, each problem as a sentence next to its field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.intake import portal_forms as forms
from services.intake.domain import DraftFields
from services.intake.schemas import AmendmentRequest, ApplicationView, WithdrawRequest
from services.intake.service import IntakeService
from shared.auth import Role
from shared.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from shared.web import Door, Pages, Posted, SignInNeededError, Viewer
from shared.web.forms import Problems, minor_units

DOOR: Final = Door(
    "/portal",
    cookie="grantflow_portal_token",
    roles=(Role.APPLICANT,),
    refusal="This portal is for member cities applying",
)
PAGES: Final = Pages(Path(__file__).parent / "templates", title="Applicant portal", home="/portal")
DRAFT: Final = "draft"
DONE: Final = {
    "saved": "Draft saved.",
    "submitted": "Application submitted. The program officers and your partner city are told.",
    "withdrawn": "Withdrawal requested: what was started is being undone.",
    "amendment": "Amendment requested: a program officer decides on it.",
}
ApplicationId = Annotated[
    str, PathParam(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
]

router = APIRouter(prefix="/portal", include_in_schema=False)


def _service(request: Request) -> IntakeService:
    service: IntakeService = request.app.state.service
    return service


def _sign_in(request: Request, error: SignInNeededError) -> HTMLResponse:
    response = PAGES.sign_in(request, error.message, error.status_code, who="a member city")
    if error.status_code in (401, 403):  # the cookie's token is no good: forget it
        DOOR.forget(response)
    return response


async def _posted(request: Request) -> Posted | HTMLResponse:
    try:
        return await DOOR.posted(request)
    except SignInNeededError as error:
        return _sign_in(request, error)


def _to(application_id: str, done: str = "") -> RedirectResponse:
    path = f"/portal/applications/{quote(application_id)}"
    return RedirectResponse(f"{path}?done={done}" if done else path, status_code=303)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    try:
        token = await DOOR.signing_in(request)
    except SignInNeededError as error:
        return PAGES.sign_in(request, error.message, error.status_code, who="a member city")
    response = RedirectResponse("/portal", status_code=303)
    DOOR.remember(response, request, token)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    posted = await _posted(request)
    if isinstance(posted, HTMLResponse):
        return posted
    response = RedirectResponse("/portal", status_code=303)
    DOOR.forget(response)
    return response


@router.get("")
async def home(request: Request) -> Response:
    try:
        viewer = await DOOR.viewer(request)
    except SignInNeededError as error:
        return _sign_in(request, error)
    service = _service(request)
    async with service.reading() as work:
        mine = await service.applications(
            work,
            viewer.principal,
            program_code=None,
            status=None,
            member_id=None,
            limit=100,
            offset=0,
        )
    return PAGES.render(
        request, "portal_home.html", page_title="My applications", viewer=viewer, mine=mine
    )


@router.post("/applications")
async def start(request: Request) -> Response:
    posted = await _posted(request)
    if isinstance(posted, HTMLResponse):
        return posted
    service = _service(request)
    async with service.work() as work:
        view = await service.create_draft(work, posted.viewer.principal, DraftFields())
    return _to(view.application_id)


@router.get("/applications/{application_id}")
async def application(request: Request, application_id: ApplicationId, done: str = "") -> Response:
    try:
        viewer = await DOOR.viewer(request)
    except SignInNeededError as error:
        return _sign_in(request, error)
    return await _page(request, viewer, application_id, flash=DONE.get(done, ""))


async def _page(
    request: Request,
    viewer: Viewer,
    application_id: str,
    *,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
    problems: Problems | None = None,
    **shown: Any,
) -> HTMLResponse:
    """The application as it is now: its draft form, or its status; ``typed`` and
    ``problems``: a refused form, shown again as it was typed."""
    shown.setdefault("acted", "")
    service = _service(request)
    try:
        async with service.reading() as work:
            view = await service.application(work, viewer.principal, application_id)
            checks = None
            if view.status == DRAFT and typed is None:
                checks = await service.preview(work, viewer.principal, application_id)
    except (NotFoundError, ForbiddenError):
        return PAGES.render(
            request, "portal_missing.html", status_code=404, page_title="Not found", viewer=viewer
        )
    if view.status != DRAFT:
        return PAGES.render(
            request,
            "portal_status.html",
            status_code=status_code,
            page_title=view.fields.title or view.application_id,
            viewer=viewer,
            view=view,
            problems=problems or Problems(),
            values=typed or {},
            currencies=forms.CURRENCIES,
            currency=_currency(view),
            **shown,
        )
    form = forms.shown(typed) if typed is not None else forms.form_of(view.fields)
    if problems is None:
        problems = forms.problems_of(checks.problems) if checks else Problems()
    return PAGES.render(
        request,
        "portal_draft.html",
        status_code=status_code,
        page_title=view.fields.title or "New application",
        viewer=viewer,
        view=view,
        form=form,
        values=form.values,
        problems=problems,
        elsewhere=problems.elsewhere(form.inputs, forms.GROUPS),
        ready=checks.ready if checks else False,
        checked=checks is not None,
        program_options=[("", "Choose a program")]
        + [
            (p.code, f"{p.name} ({p.code})") for p in service.programs(limit=100, offset=0).programs
        ],
        focus_options=[("", "Choose a focus area"), *forms.options(forms.FOCUS_AREAS)],
        category_options=forms.options(forms.CATEGORIES),
        currencies=forms.CURRENCIES,
        **shown,
    )


def _currency(view: ApplicationView) -> str:
    return view.submitted.requested.currency if view.submitted else "USD"


async def _save(
    request: Request, posted: Posted, application_id: str
) -> ApplicationView | HTMLResponse:
    """The posted draft form saved; refused, the form again as typed with the reasons."""
    viewer, form = posted.viewer, posted.form
    refused: dict[str, Any] = {"typed": form, "flash_kind": "error"}
    try:
        fields = forms.draft_of(form)
    except forms.DraftFormError as error:
        flash = "The draft was not saved: please correct the marked fields."
        return await _page(
            request,
            viewer,
            application_id,
            status_code=422,
            problems=error.problems,
            flash=flash,
            **refused,
        )
    service = _service(request)
    try:
        async with service.work() as work:
            return await service.update_draft(work, viewer.principal, application_id, fields)
    except InvalidError as error:
        flash = "The draft was not saved: please correct the marked fields."
        return await _page(
            request,
            viewer,
            application_id,
            status_code=422,
            problems=forms.problems_of(error.problems),
            flash=flash,
            **refused,
        )
    except ConflictError as error:
        return await _page(
            request,
            viewer,
            application_id,
            status_code=409,
            flash=f"The draft was not saved: {error}.",
            **refused,
        )


@router.post("/applications/{application_id}/save")
async def save(request: Request, application_id: ApplicationId) -> Response:
    posted = await _posted(request)
    if isinstance(posted, HTMLResponse):
        return posted
    saved = await _save(request, posted, application_id)
    return saved if isinstance(saved, HTMLResponse) else _to(application_id, "saved")


@router.post("/applications/{application_id}/submit")
async def submit(request: Request, application_id: ApplicationId) -> Response:
    """Save what the form holds, then submit it: a check that fails keeps the saved draft."""
    posted = await _posted(request)
    if isinstance(posted, HTMLResponse):
        return posted
    saved = await _save(request, posted, application_id)
    if isinstance(saved, HTMLResponse):
        return saved
    service, viewer = _service(request), posted.viewer
    try:
        async with service.work() as work:
            await service.submit(work, viewer.principal, application_id, saved.draft_version)
    except InvalidError as error:
        return await _page(
            request,
            viewer,
            application_id,
            status_code=422,
            problems=forms.problems_of(error.problems),
            typed=posted.form,
            flash_kind="error",
            flash="Saved, but not submitted yet: please correct the marked fields.",
        )
    except ConflictError as error:
        return await _page(
            request,
            viewer,
            application_id,
            status_code=409,
            flash_kind="error",
            flash=f"Saved, but not submitted: {error}.",
        )
    return _to(application_id, "submitted")


async def _after_submission(
    request: Request, application_id: str, action: str, body: Any, done: str
) -> Response:
    """Withdraw or amend: the API's own body, the service's own use case."""
    posted = await _posted(request)
    if isinstance(posted, HTMLResponse):
        return posted
    viewer, form = posted.viewer, posted.form
    service = _service(request)
    try:
        request_body = body(form)
        async with service.work() as work:
            use_case = getattr(service, action)
            await use_case(work, viewer.principal, application_id, request_body)
    except forms.DraftFormError as error:
        problems = error.problems
    except ValidationError as error:
        problems = Problems()
        for name, messages in Problems.of_validation(error).items():
            for message in messages:
                problems.add(name, forms.human(name, message))
    except InvalidError as error:
        problems = forms.problems_of(error.problems)
    except ConflictError as error:
        return await _page(
            request,
            viewer,
            application_id,
            status_code=409,
            flash_kind="error",
            flash=f"That cannot be done now: {error}.",
            typed=form,
            acted=action,
        )
    else:
        return _to(application_id, done)
    return await _page(
        request,
        viewer,
        application_id,
        status_code=422,
        problems=problems,
        typed=form,
        acted=action,
        flash_kind="error",
        flash="Nothing was sent: please correct the marked fields.",
    )


def _withdrawal(form: dict[str, str]) -> str:
    request = WithdrawRequest.model_validate_json(json.dumps({"reason": form.get("reason", "")}))
    return request.reason


def _amendment(form: dict[str, str]) -> AmendmentRequest:
    data: dict[str, Any] = {"reason": form.get("reason", "")}
    for name in ("new_exchange_start", "new_exchange_end"):
        if form.get(name, "").strip():
            data[name] = form[name].strip()
    if form.get("new_award", "").strip():
        currency = form.get("new_award.currency", "USD")
        try:
            amount = minor_units(form["new_award"], currency)
        except ValueError as error:
            raise forms.DraftFormError(
                Problems({"new_award": [f"The new award {error}"]})
            ) from error
        data["new_award"] = {"amount_minor": amount, "currency": currency}
    data["cancel_exchange"] = form.get("cancel_exchange") == "yes"
    return AmendmentRequest.model_validate_json(json.dumps(data))


@router.post("/applications/{application_id}/withdraw")
async def withdraw(request: Request, application_id: ApplicationId) -> Response:
    return await _after_submission(request, application_id, "withdraw", _withdrawal, "withdrawn")


@router.post("/applications/{application_id}/amend")
async def amend(request: Request, application_id: ApplicationId) -> Response:
    return await _after_submission(
        request, application_id, "request_amendment", _amendment, "amendment"
    )
