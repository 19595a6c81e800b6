"""The applicant portal at ``/portal``: my applications, a draft form with the submission
checks beside its fields, submit, the status timeline, withdraw, amendments, and the
post-exchange report.

Applicants sign in with their bearer token as every page does (``shared.web``). The pages
call the use cases the JSON API calls, with the same rules; the report form calls
reporting's API as the applicant (``portal_reports``). A refused form comes back as it
was typed, each problem as a sentence next to its field.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.intake import portal_forms as forms
from services.intake import portal_reports as reports
from services.intake.domain import DraftFields
from services.intake.schemas import AmendmentRequest, ApplicationView, WithdrawRequest
from services.intake.service import IntakeService
from services.intake.settings import IntakeSettings
from shared.auth import Role
from shared.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from shared.service import Work
from shared.web import Door, Pages, Posted, SignInNeededError, Viewer, add_sign_in_routes
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
    "report-saved": "Report saved as a draft.",
    "report-submitted": "Report submitted. A reviewer reads it next.",
}
# Once the lifecycle has asked for the report, the application's page shows it.
REPORT_STAGES: Final = frozenset(
    {
        "report_due",
        "report_overdue",
        "report_review",
        "report_changes_requested",
        "final_payment",
        "closing",
        "closed",
    }
)
UNREACHABLE: Final = "The reporting service cannot be reached right now"
ApplicationId = Annotated[
    str, PathParam(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
]
ReportId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]

router = APIRouter(prefix="/portal", include_in_schema=False)
SIGN_IN: Final = add_sign_in_routes(router, DOOR, PAGES, who="a member city")


def _service(request: Request) -> IntakeService:
    service: IntakeService = request.app.state.service
    return service


def _to(application_id: str, done: str = "") -> RedirectResponse:
    return _see_other(f"/portal/applications/{quote(application_id)}", done)


def _see_other(path: str, done: str) -> RedirectResponse:
    """After a post, the page again by GET; ``done`` names what the page then says was done."""
    return RedirectResponse(f"{path}?done={done}" if done else path, status_code=303)


@router.get("")
async def home(request: Request) -> Response:
    viewer = await SIGN_IN.viewer(request)
    if isinstance(viewer, HTMLResponse):
        return viewer
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
    posted = await SIGN_IN.posted(request)
    if isinstance(posted, HTMLResponse):
        return posted
    service = _service(request)
    async with service.work() as work:
        view = await service.create_draft(work, posted.viewer.principal, DraftFields())
    return _to(view.application_id)


@router.get("/applications/{application_id}")
async def application(request: Request, application_id: ApplicationId, done: str = "") -> Response:
    viewer = await SIGN_IN.viewer(request)
    if isinstance(viewer, HTMLResponse):
        return viewer
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
        return _missing(request, viewer)
    if view.status != DRAFT:
        if view.status in REPORT_STAGES:
            shown.update(await _reports(request, viewer, application_id))
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


def _missing(request: Request, viewer: Viewer, status_code: int = 404) -> HTMLResponse:
    return PAGES.render(
        request,
        "portal_missing.html",
        status_code=status_code,
        page_title="Not found" if status_code == 404 else "Not available",
        viewer=viewer,
        unavailable=status_code != 404,
    )


def _reporting(request: Request, viewer: Viewer) -> reports.ReportingApi:
    settings: IntakeSettings = request.app.state.runtime.settings
    return reports.ReportingApi(settings.reporting_url, viewer.token)


async def _reports(request: Request, viewer: Viewer, application_id: str) -> dict[str, Any]:
    """The application's report obligations, or why they cannot be shown now."""
    try:
        found = await _reporting(request, viewer).reports(application_id)
    except (reports.ReportingUnavailableError, reports.ReportRefusedError) as error:
        return {"reports": [], "reports_problem": f"{UNREACHABLE} ({error})."}
    return {"reports": found, "reports_problem": ""}


async def _refused(
    request: Request,
    posted: Posted,
    application_id: str,
    error: Exception,
    *,
    unchecked: str,
    refused: str,
    acted: str = "",
) -> HTMLResponse:
    """The page again as it was typed, saying why the form was refused: the fields at fault
    (422), or the service's reason (409). ``unchecked`` and ``refused`` begin the flash."""
    problems = _problems_of(error)
    if problems is None:
        status_code, flash = 409, f"{refused}: {error}."
    else:
        status_code, flash = 422, f"{unchecked}: please correct the marked fields."
    return await _page(
        request,
        posted.viewer,
        application_id,
        status_code=status_code,
        problems=problems,
        typed=posted.form,
        acted=acted,
        flash_kind="error",
        flash=flash,
    )


def _problems_of(error: Exception) -> Problems | None:
    """The problems of a form by field, worded for people; None: not the form's fault."""
    if isinstance(error, forms.DraftFormError):
        return error.problems
    if isinstance(error, InvalidError):
        return forms.problems_of(error.problems)
    if isinstance(error, ValidationError):
        problems = Problems()
        for name, messages in Problems.of_validation(error).items():
            for message in messages:
                problems.add(name, forms.human(name, message))
        return problems
    return None


REFUSED: Final = (forms.DraftFormError, ValidationError, InvalidError, ConflictError)
Given = TypeVar("Given")
Done = TypeVar("Done")


async def _attempt(
    request: Request,
    posted: Posted,
    application_id: str,
    read: Callable[[], Given],
    act: Callable[[Work, Given], Awaitable[Done]],
    *,
    unchecked: str,
    refused: str,
    acted: str = "",
) -> Done | HTMLResponse:
    """What the form asks, ``read`` from it before any transaction opens, then ``act``-ed on
    in one unit of work; refused, the page again as typed with the reasons."""
    try:
        given = read()
        async with _service(request).work() as work:
            return await act(work, given)
    except REFUSED as error:
        return await _refused(
            request,
            posted,
            application_id,
            error,
            unchecked=unchecked,
            refused=refused,
            acted=acted,
        )


async def _save(
    request: Request, posted: Posted, application_id: str
) -> ApplicationView | HTMLResponse:
    """The posted draft form saved; refused, the form again as typed with the reasons."""
    service, principal = _service(request), posted.viewer.principal
    said = "The draft was not saved"
    return await _attempt(
        request,
        posted,
        application_id,
        lambda: forms.draft_of(posted.form),
        lambda work, fields: service.update_draft(work, principal, application_id, fields),
        unchecked=said,
        refused=said,
    )


@router.post("/applications/{application_id}/save")
async def save(request: Request, application_id: ApplicationId) -> Response:
    posted = await SIGN_IN.posted(request)
    if isinstance(posted, HTMLResponse):
        return posted
    saved = await _save(request, posted, application_id)
    return saved if isinstance(saved, HTMLResponse) else _to(application_id, "saved")


@router.post("/applications/{application_id}/submit")
async def submit(request: Request, application_id: ApplicationId) -> Response:
    """Save what the form holds, then submit it: a check that fails keeps the saved draft."""
    posted = await SIGN_IN.posted(request)
    if isinstance(posted, HTMLResponse):
        return posted
    saved = await _save(request, posted, application_id)
    if isinstance(saved, HTMLResponse):
        return saved
    service, principal = _service(request), posted.viewer.principal
    submitted = await _attempt(
        request,
        posted,
        application_id,
        lambda: saved.draft_version,
        lambda work, version: service.submit(work, principal, application_id, version),
        unchecked="Saved, but not submitted yet",
        refused="Saved, but not submitted",
    )
    return submitted if isinstance(submitted, HTMLResponse) else _to(application_id, "submitted")


async def _after_submission(
    request: Request, application_id: str, action: str, body: Any, done: str
) -> Response:
    """Withdraw or amend: the API's own body, the service's own use case."""
    posted = await SIGN_IN.posted(request)
    if isinstance(posted, HTMLResponse):
        return posted
    use_case, principal = getattr(_service(request), action), posted.viewer.principal
    answered = await _attempt(
        request,
        posted,
        application_id,
        lambda: body(posted.form),
        lambda work, given: use_case(work, principal, application_id, given),
        unchecked="Nothing was sent",
        refused="That cannot be done now",
        acted=action,
    )
    return answered if isinstance(answered, HTMLResponse) else _to(application_id, done)


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


# ---------------------------------------------------------------- the post-exchange report


def _report_path(application_id: str, report_id: str, done: str = "") -> RedirectResponse:
    return _see_other(
        f"/portal/applications/{quote(application_id)}/reports/{quote(report_id)}", done
    )


@router.get("/applications/{application_id}/reports/{report_id}")
async def report(
    request: Request, application_id: ApplicationId, report_id: ReportId, done: str = ""
) -> Response:
    viewer = await SIGN_IN.viewer(request)
    if isinstance(viewer, HTMLResponse):
        return viewer
    return await _report_page(request, viewer, application_id, report_id, flash=DONE.get(done, ""))


async def _report_page(
    request: Request,
    viewer: Viewer,
    application_id: str,
    report_id: str,
    *,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
    problems: Problems | None = None,
    **shown: Any,
) -> HTMLResponse:
    """The report as reporting has it: its form while it can change, else what was sent;
    ``typed`` and ``problems``: a refused form, shown again as it was typed."""
    service = _service(request)
    try:
        async with service.reading() as work:
            view = await service.application(work, viewer.principal, application_id)
        found = await _reporting(request, viewer).report(report_id)
    except (NotFoundError, ForbiddenError, reports.ReportRefusedError):
        return _missing(request, viewer)
    except reports.ReportingUnavailableError:
        return _missing(request, viewer, 503)
    if found.application_id != application_id:
        return _missing(request, viewer)
    form = reports.shown(typed) if typed is not None else reports.form_of(found)
    problems = problems or Problems()
    currency = found.awarded.currency if found.awarded else _currency(view)
    return PAGES.render(
        request,
        "portal_report.html",
        status_code=status_code,
        page_title=f"Report: {view.fields.title or application_id}",
        viewer=viewer,
        view=view,
        report=found,
        form=form,
        values=form.values,
        problems=problems,
        elsewhere=problems.elsewhere(form.inputs, reports.GROUPS),
        category_options=[
            ("", "Choose a budget category"),
            *forms.options(tuple(found.categories)),
        ],
        currencies=forms.CURRENCIES,
        currency=currency,
        **shown,
    )


async def _send_report(
    request: Request, application_id: str, report_id: str, *, submit: bool
) -> Response:
    """Save the report form through reporting's API (and submit it): refused, the form
    comes back as typed, each of reporting's problems next to its field."""
    posted = await SIGN_IN.posted(request)
    if isinstance(posted, HTMLResponse):
        return posted
    again = partial(_report_page, request, posted.viewer, application_id, report_id)
    kept: dict[str, Any] = {"typed": posted.form, "flash_kind": "error"}
    unsaved = "The report was not saved"
    try:
        read = reports.report_of(posted.form)
    except reports.ReportFormError as error:
        flash = f"{unsaved}: please correct the marked fields."
        return await again(status_code=422, problems=error.problems, flash=flash, **kept)
    api, said = _reporting(request, posted.viewer), unsaved
    try:
        await api.save(report_id, read.body)
        said = "Saved, but not submitted yet"
        if submit:
            await api.submit(report_id)
    except reports.ReportingUnavailableError as error:
        return await again(status_code=503, flash=f"{said}: {UNREACHABLE} ({error}).", **kept)
    except reports.ReportRefusedError as error:
        if error.status_code in (401, 403):  # the token expired since the page was shown
            return SIGN_IN.form(request, SignInNeededError("Please sign in again.", 401))
        if error.status_code == 404:
            return _missing(request, posted.viewer)
        if error.problems is None:
            return await again(status_code=error.status_code, flash=f"{said}: {error}.", **kept)
        flash = f"{said}: please correct the marked fields."
        problems = read.problems(error.problems)
        return await again(status_code=error.status_code, problems=problems, flash=flash, **kept)
    return _report_path(application_id, report_id, "report-submitted" if submit else "report-saved")


@router.post("/applications/{application_id}/reports/{report_id}/save")
async def save_report(
    request: Request, application_id: ApplicationId, report_id: ReportId
) -> Response:
    return await _send_report(request, application_id, report_id, submit=False)


@router.post("/applications/{application_id}/reports/{report_id}/submit")
async def submit_report(
    request: Request, application_id: ApplicationId, report_id: ReportId
) -> Response:
    """Save what the form holds, then submit it: a check that fails keeps the saved draft."""
    return await _send_report(request, application_id, report_id, submit=True)
