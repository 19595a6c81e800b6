"""HTTP routes of the intake service: parse, authorize, call one use case, answer.

Every route needs a bearer token except the partner's confirmation link, whose signed
one-time token is itself the credential (the partner sister city has no account).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import pages, service
from services.intake import persistence as db
from services.intake.domain import (
    ConflictError,
    DraftFields,
    ForbiddenError,
    GoneError,
    IntakeError,
    NotFoundError,
    RuleViolationError,
)
from services.intake.schemas import (
    AmendmentRequest,
    ApplicationList,
    ApplicationView,
    ChecksView,
    MemberCreate,
    MemberList,
    MemberUpdate,
    MemberView,
    PartnerAnswer,
    PartnerAnswered,
    ProgramList,
    ProgramView,
    RateUpdate,
    RateView,
    ResubmitRequest,
    SubmitRequest,
    WithdrawRequest,
)
from services.intake.service import Intake
from shared.auth import OFFICERS, Principal, Role, require
from shared.db import unit_of_work

router = APIRouter(prefix="/v1")

Anyone = Annotated[
    Principal, Depends(require(Role.APPLICANT, Role.REVIEWER, Role.PROGRAM_OFFICER, Role.ADMIN))
]
ApplicantOrOfficer = Annotated[Principal, Depends(require(Role.APPLICANT, *OFFICERS))]
Applicant = Annotated[Principal, Depends(require(Role.APPLICANT))]
Officer = Annotated[Principal, Depends(require(*OFFICERS))]


async def _intake(request: Request) -> Intake:
    intake: Intake = request.app.state.intake
    return intake


IntakeDep = Annotated[Intake, Depends(_intake)]
ApplicationId = Annotated[str, Path(min_length=1, max_length=64)]
MemberIdPath = Annotated[str, Path(min_length=1, max_length=64)]
Currency = Annotated[str, Path(pattern=r"^[A-Z]{3}$", examples=["KES"])]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeating a request with the same key replays the first answer.",
    ),
]

Responses = dict[int | str, dict[str, Any]]
_NOT_FOUND: Responses = {404: {"description": "no such object, or not yours"}}
_CONFLICT: Responses = {409: {"description": "the action does not fit the application's state"}}
_REFUSED: Responses = {
    422: {"description": "a field is wrong; each problem names it in plain words"}
}


def _respond(outcome: service.Outcome) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


async def _idempotent_action(
    request: Request,
    intake: Intake,
    principal: Principal,
    key: str | None,
    body: Any,
    use_case: Callable[[AsyncSession], Awaitable[db.ApplicationRecord]],
    *,
    refuses_repeats: bool = False,
) -> JSONResponse:
    async with unit_of_work(intake.sessions) as session:

        async def act() -> tuple[int, dict[str, Any]]:
            record = await use_case(session)
            view = await service.application_view(session, record)
            return status.HTTP_202_ACCEPTED, view.model_dump(mode="json")

        outcome = await service.idempotent(
            session,
            intake,
            scope=service.idempotency_scope(principal),
            key=key,
            request_fingerprint=service.fingerprint(request.method, request.url.path, body),
            action=act,
            refuses_repeats=refuses_repeats,
        )
    return _respond(outcome)


# --- programs -------------------------------------------------------------------------


def _program_view(intake: Intake, code: str) -> ProgramView:
    rules = intake.catalog.programs[code]
    today = intake.today()
    return ProgramView(
        code=rules.code,
        name=rules.name,
        window_open=rules.application_opens <= today <= rules.application_closes,
        rules=rules,
    )


@router.get("/programs", tags=["programs"], summary="Funding programs, their rules and windows")
async def list_programs(_principal: Anyone, intake: IntakeDep) -> ProgramList:
    return ProgramList(
        catalog_version=intake.catalog.version,
        programs=[_program_view(intake, code) for code in intake.catalog.programs],
    )


@router.get(
    "/programs/{code}", tags=["programs"], summary="One funding program", responses=_NOT_FOUND
)
async def get_program(
    code: Annotated[str, Path(max_length=40)], _principal: Anyone, intake: IntakeDep
) -> ProgramView:
    if code not in intake.catalog.programs:
        raise NotFoundError(f"there is no program {code}")
    return _program_view(intake, code)


# --- members --------------------------------------------------------------------------


@router.get("/members", tags=["members"], summary="Member cities (an applicant sees its own)")
async def list_members(
    principal: ApplicantOrOfficer,
    intake: IntakeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> MemberList:
    only = None if principal.is_officer else principal.member_id
    async with intake.sessions() as session:
        records, total = await db.list_members(session, member_id=only, limit=limit, offset=offset)
    return MemberList(
        items=[service.member_view(r) for r in records], total=total, limit=limit, offset=offset
    )


@router.post(
    "/members",
    tags=["members"],
    status_code=status.HTTP_201_CREATED,
    summary="Register a member city (program officers)",
    responses={**_CONFLICT, **_REFUSED},
)
async def create_member(body: MemberCreate, _principal: Officer, intake: IntakeDep) -> MemberView:
    async with unit_of_work(intake.sessions) as session:
        return service.member_view(await service.create_member(session, intake, body))


@router.get(
    "/members/{member_id}", tags=["members"], summary="One member city", responses=_NOT_FOUND
)
async def get_member(
    member_id: MemberIdPath, principal: ApplicantOrOfficer, intake: IntakeDep
) -> MemberView:
    async with intake.sessions() as session:
        return service.member_view(await service.visible_member(session, principal, member_id))


@router.patch(
    "/members/{member_id}",
    tags=["members"],
    summary="Change a member city (program officers); standing follows report events",
    responses={**_NOT_FOUND, **_REFUSED},
)
async def update_member(
    member_id: MemberIdPath, body: MemberUpdate, principal: Officer, intake: IntakeDep
) -> MemberView:
    async with unit_of_work(intake.sessions) as session:
        record = await service.update_member(session, intake, principal, member_id, body)
        return service.member_view(record)


# --- exchange rates -------------------------------------------------------------------


@router.get("/exchange-rates", tags=["exchange rates"], summary="The conversion rates in use")
async def list_rates(_principal: Anyone, intake: IntakeDep) -> list[RateView]:
    async with intake.sessions() as session:
        return [RateView.model_validate(row) for row in await db.list_rates(session)]


@router.put(
    "/exchange-rates/{from_currency}/{to_currency}",
    tags=["exchange rates"],
    summary="Set a conversion rate (program officers)",
    responses=_REFUSED,
)
async def set_rate(
    from_currency: Currency,
    to_currency: Currency,
    body: RateUpdate,
    principal: Officer,
    intake: IntakeDep,
) -> RateView:
    async with unit_of_work(intake.sessions) as session:
        saved = await service.set_rate(
            session, intake, principal, from_currency, to_currency, body.rate
        )
        return RateView.model_validate(saved)


# --- applications ---------------------------------------------------------------------


@router.post(
    "/applications",
    tags=["applications"],
    status_code=status.HTTP_201_CREATED,
    summary="Start a draft application (it may be incomplete)",
    responses=_REFUSED,
)
async def create_application(
    body: DraftFields, principal: Applicant, intake: IntakeDep
) -> ApplicationView:
    async with unit_of_work(intake.sessions) as session:
        record = await service.create_draft(session, intake, principal, body)
        return await service.application_view(session, record)


@router.get(
    "/applications", tags=["applications"], summary="Applications (an applicant sees its own)"
)
async def list_applications(
    principal: ApplicantOrOfficer,
    intake: IntakeDep,
    program: Annotated[str | None, Query(max_length=40)] = None,
    application_status: Annotated[str | None, Query(alias="status", max_length=80)] = None,
    member_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ApplicationList:
    if not principal.is_officer:
        if member_id is not None and member_id != principal.member_id:
            return ApplicationList(items=[], total=0, limit=limit, offset=offset)
        member_id = principal.member_id
    async with intake.sessions() as session:
        records, total = await db.list_applications(
            session,
            member_id=member_id,
            program_code=program,
            status=application_status,
            limit=limit,
            offset=offset,
        )
    return ApplicationList(
        items=[service.application_summary(r) for r in records],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/applications/{application_id}",
    tags=["applications"],
    summary="An application: status, deadlines ahead and full history",
    responses=_NOT_FOUND,
)
async def get_application(
    application_id: ApplicationId, principal: ApplicantOrOfficer, intake: IntakeDep
) -> ApplicationView:
    async with intake.sessions() as session:
        record = await service.visible_application(session, principal, application_id)
        return await service.application_view(session, record)


@router.patch(
    "/applications/{application_id}",
    tags=["applications"],
    summary="Edit a draft: the fields sent replace the draft's",
    responses={**_NOT_FOUND, **_CONFLICT, **_REFUSED},
)
async def update_application(
    application_id: ApplicationId, body: DraftFields, principal: Applicant, intake: IntakeDep
) -> ApplicationView:
    async with unit_of_work(intake.sessions) as session:
        record = await service.update_draft(session, intake, principal, application_id, body)
        return await service.application_view(session, record)


@router.get(
    "/applications/{application_id}/checks",
    tags=["applications"],
    summary="Preview the submission checks of a draft",
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def preview_checks(
    application_id: ApplicationId, principal: ApplicantOrOfficer, intake: IntakeDep
) -> ChecksView:
    async with intake.sessions() as session:
        return service.checks_view(
            await service.preview(session, intake, principal, application_id)
        )


@router.post(
    "/applications/{application_id}/submit",
    tags=["applications"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ApplicationView,
    summary="Submit a draft (idempotent with an Idempotency-Key header)",
    responses={**_NOT_FOUND, **_CONFLICT, **_REFUSED},
)
async def submit_application(
    application_id: ApplicationId,
    request: Request,
    principal: Applicant,
    intake: IntakeDep,
    idempotency_key: IdempotencyKey = None,
    body: SubmitRequest | None = None,
) -> JSONResponse:
    version = body.draft_version if body else None
    return await _idempotent_action(
        request,
        intake,
        principal,
        idempotency_key,
        body,
        lambda session: service.submit(session, intake, principal, application_id, version),
        refuses_repeats=True,  # only a draft can be submitted
    )


@router.post(
    "/applications/{application_id}/withdraw",
    tags=["applications"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ApplicationView,
    summary="Withdraw, with a reason; the workflow undoes what was done",
    responses={**_NOT_FOUND, **_CONFLICT, **_REFUSED},
)
async def withdraw_application(
    application_id: ApplicationId,
    body: WithdrawRequest,
    request: Request,
    principal: Applicant,
    intake: IntakeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _idempotent_action(
        request,
        intake,
        principal,
        idempotency_key,
        body,
        lambda session: service.withdraw(session, intake, principal, application_id, body.reason),
    )


@router.post(
    "/applications/{application_id}/resubmit",
    tags=["applications"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ApplicationView,
    summary="Resubmit after a revision request",
    responses={**_NOT_FOUND, **_CONFLICT, **_REFUSED},
)
async def resubmit_application(
    application_id: ApplicationId,
    body: ResubmitRequest,
    request: Request,
    principal: Applicant,
    intake: IntakeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _idempotent_action(
        request,
        intake,
        principal,
        idempotency_key,
        body,
        lambda session: service.resubmit(session, intake, principal, application_id, body),
    )


@router.post(
    "/applications/{application_id}/amendments",
    tags=["applications"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ApplicationView,
    summary="Ask to move the exchange dates, change the award or cancel, after an award",
    responses={**_NOT_FOUND, **_CONFLICT, **_REFUSED},
)
async def request_amendment(
    application_id: ApplicationId,
    body: AmendmentRequest,
    request: Request,
    principal: Applicant,
    intake: IntakeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await _idempotent_action(
        request,
        intake,
        principal,
        idempotency_key,
        body,
        lambda session: service.request_amendment(session, intake, principal, application_id, body),
    )


# --- the partner's confirmation link --------------------------------------------------

_PARTNER_ANSWER_SCHEMA = PartnerAnswer.model_json_schema()
_PARTNER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _PARTNER_ANSWER_SCHEMA},
            "application/x-www-form-urlencoded": {"schema": _PARTNER_ANSWER_SCHEMA},
        },
    }
}
PartnerToken = Annotated[
    str, Path(max_length=200, description="The signed one-time token from the partner's email.")
]


@router.get(
    "/partner-confirmations/{token}",
    tags=["partner confirmation"],
    summary="The page the partner's emailed link opens (no bearer token: the link is one)",
    response_class=HTMLResponse,
    responses=_NOT_FOUND,
)
async def partner_page(token: PartnerToken, request: Request, intake: IntakeDep) -> HTMLResponse:
    async with intake.sessions() as session:
        try:
            info = await service.partner_link(session, intake, token)
        except NotFoundError as error:
            return HTMLResponse(pages.message_page("Link not valid", error.message), 404)
    link = info.link
    if link["answered_at"] is not None:
        return HTMLResponse(pages.answered_page(bool(link["confirmed"]), info.member_name))
    draft = DraftFields.model_validate(info.application.draft)
    return HTMLResponse(
        pages.confirmation_page(
            action=request.url.path,
            partner_city=link["partner_city"],
            member_name=info.member_name,
            title=info.application.title or "",
            exchange_start=draft.exchange_start.isoformat() if draft.exchange_start else "",
            exchange_end=draft.exchange_end.isoformat() if draft.exchange_end else "",
            due=link["due_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
    )


@router.post(
    "/partner-confirmations/{token}",
    tags=["partner confirmation"],
    summary="The partner confirms or declines; the link then stops working",
    response_model=PartnerAnswered,
    responses={**_NOT_FOUND, 409: {"description": "the link was used already"}, 410: {}},
    openapi_extra=_PARTNER_BODY,
)
async def partner_answer(token: PartnerToken, request: Request, intake: IntakeDep) -> Response:
    from_form = request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    )
    answer = _parse_partner_answer(await request.body(), from_form)
    try:
        async with unit_of_work(intake.sessions) as session:
            info = await service.answer_partner(session, intake, token, answer)
    except (NotFoundError, ConflictError, GoneError) as error:
        if not from_form:
            raise
        code = 404 if isinstance(error, NotFoundError) else 409
        code = 410 if isinstance(error, GoneError) else code
        return HTMLResponse(pages.message_page("This link cannot be used", error.message), code)
    if from_form:
        return HTMLResponse(pages.answered_page(bool(info.link["confirmed"]), info.member_name))
    return JSONResponse(
        PartnerAnswered(
            application_id=info.link["application_id"],
            confirmed=bool(info.link["confirmed"]),
            answered_at=info.link["answered_at"],
        ).model_dump(mode="json")
    )


def _parse_partner_answer(raw: bytes, from_form: bool) -> PartnerAnswer:
    try:
        if from_form:
            data: Any = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        else:
            data = json.loads(raw or b"null")
        return PartnerAnswer.model_validate(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": str(error), "input": None}]
        ) from error
    except ValidationError as error:
        raise RequestValidationError(
            [{**problem, "loc": ("body", *problem["loc"])} for problem in error.errors()]
        ) from error


# --- errors ---------------------------------------------------------------------------

_PLAIN_WORDS = {
    "missing": "{field} is required",
    "extra_forbidden": "{field} is not something you can set here",
    "json_invalid": "the body is not valid JSON",
    "int_type": "{field} must be a whole number",
    "bool_type": "{field} must be true or false",
    "date_from_datetime_parsing": "{field} must be a date such as 2027-05-10",
    "date_parsing": "{field} must be a date such as 2027-05-10",
    "date_type": "{field} must be a date such as 2027-05-10",
    "literal_error": "{field} must be one of: {expected}",
}


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _plain(problem: dict[str, Any]) -> str:
    field = _field_name(problem.get("loc", ()))
    kind = str(problem.get("type", ""))
    if kind in _PLAIN_WORDS:
        expected = (problem.get("ctx") or {}).get("expected", "")
        return _PLAIN_WORDS[kind].format(field=field, expected=expected)
    if kind == "string_pattern_mismatch":
        if field.endswith("email"):
            return f"{field} must be an email address"
        if field.endswith("country"):
            return f"{field} must be a two-letter country code such as KE"
        if field.endswith("currency"):
            return f"{field} must be a three-letter currency code such as USD"
        if field.endswith("rate"):
            return f'{field} must be a positive decimal number written as text, e.g. "0.0077"'
    return f"{field}: {problem.get('msg', 'is not valid')}"


def _problems(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "loc": list(item.get("loc", ())),
            "field": _field_name(item.get("loc", ())),
            "msg": _plain(item),
            "type": item.get("type", "value_error"),
        }
        for item in items
    ]


def install_error_handlers(app: FastAPI) -> None:
    async def refused(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return JSONResponse({"detail": _problems(list(error.errors()))}, status_code=422)

    async def intake_error(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, IntakeError)
        if isinstance(error, RuleViolationError):
            detail = [
                {
                    "loc": ["body", *p.field.replace("[", ".").replace("]", "").split(".")],
                    "field": p.field,
                    "msg": p.message,
                    "type": "rule",
                }
                for p in error.problems
            ]
            return JSONResponse({"detail": detail}, status_code=422)
        code = {
            NotFoundError: 404,
            ConflictError: 409,
            GoneError: 410,
            ForbiddenError: 403,
        }.get(type(error), 400)
        return JSONResponse({"detail": error.message}, status_code=code)

    app.add_exception_handler(RequestValidationError, refused)
    app.add_exception_handler(IntakeError, intake_error)
