"""HTTP routes of the intake service: parse, authorize, call one use case, answer.

Every route needs a bearer token except the partner's confirmation link, whose signed
one-time token is itself the credential (the partner sister city has no account).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Header, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ValidationError

from services.intake import pages
from services.intake.domain import DraftFields
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
    RateList,
    RateUpdate,
    RateView,
    ResubmitRequest,
    SubmitRequest,
    WithdrawRequest,
)
from services.intake.service import IntakeService
from shared.auth import OFFICERS, Principal, Role, require
from shared.contracts.money import CurrencyCode
from shared.errors import ConflictError, GoneError, NotFoundError
from shared.http import Offset, limit_query
from shared.service import Work, the_service

router = APIRouter(prefix="/v1")

Anyone = Annotated[
    Principal, Depends(require(Role.APPLICANT, Role.REVIEWER, Role.PROGRAM_OFFICER, Role.ADMIN))
]
ApplicantOrOfficer = Annotated[Principal, Depends(require(Role.APPLICANT, *OFFICERS))]
Applicant = Annotated[Principal, Depends(require(Role.APPLICANT))]
Officer = Annotated[Principal, Depends(require(*OFFICERS))]
Intake = Annotated[IntakeService, Depends(the_service)]

ApplicationId = Annotated[str, Path(min_length=1, max_length=64)]
MemberIdPath = Annotated[str, Path(min_length=1, max_length=64)]
Currency = Annotated[CurrencyCode, Path(examples=["KES"])]
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
_CONFLICT: Responses = {
    409: {
        "description": "the action does not fit the application's state, or the application "
        "breaks a rule of its program (each problem named, as in a 422)"
    }
}
_UNKNOWN_PROGRAM: Responses = {
    409: {"description": "the catalog has no such program (the problem is named)"}
}
_REFUSED: Responses = {
    422: {"description": "a field is wrong; each problem names it in plain words"}
}


# --- idempotent actions ---------------------------------------------------------------


def fingerprint(method: str, path: str, body: BaseModel | None) -> str:
    """What makes two requests "the same": method, path and the parsed body."""
    canonical = json.dumps(
        body.model_dump(mode="json", exclude_unset=True) if body is not None else None,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class IdempotentCall:
    """An applicant's action that an Idempotency-Key makes safe to repeat."""

    request: Request
    principal: Principal
    service: IntakeService
    key: str | None

    async def run(
        self,
        body: BaseModel | None,
        use_case: Callable[[Work], Awaitable[ApplicationView]],
        *,
        refuses_repeats: bool = False,
    ) -> JSONResponse:
        principal, service = self.principal, self.service
        async with service.work() as work:
            outcome = await service.idempotent(
                work,
                scope=f"{principal.role.value}:{principal.member_id or principal.subject}",
                key=self.key,
                fingerprint=fingerprint(self.request.method, self.request.url.path, body),
                action=lambda: use_case(work),
                status_code=status.HTTP_202_ACCEPTED,
                refuses_repeats=refuses_repeats,
            )
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
        return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


async def _applicant_call(
    request: Request, principal: Applicant, service: Intake, idempotency_key: IdempotencyKey = None
) -> IdempotentCall:
    return IdempotentCall(request, principal, service, idempotency_key)


ApplicantCall = Annotated[IdempotentCall, Depends(_applicant_call)]
# The applicant's actions on a submitted application: accepted now, answered by the workflow.
_ACCEPTED: dict[str, Any] = {
    "tags": ["applications"],
    "status_code": status.HTTP_202_ACCEPTED,
    "response_model": ApplicationView,
    "responses": {**_NOT_FOUND, **_CONFLICT, **_REFUSED},
}


# --- programs -------------------------------------------------------------------------


@router.get("/programs", tags=["programs"], summary="Funding programs, their rules and windows")
async def list_programs(
    _principal: Anyone,
    service: Intake,
    limit: int = limit_query(100, 500),
    offset: Offset = 0,
) -> ProgramList:
    return service.programs(limit=limit, offset=offset)


@router.get(
    "/programs/{code}", tags=["programs"], summary="One funding program", responses=_NOT_FOUND
)
async def get_program(
    code: Annotated[str, Path(max_length=40)], _principal: Anyone, service: Intake
) -> ProgramView:
    return service.program(code)


# --- members --------------------------------------------------------------------------


@router.get("/members", tags=["members"], summary="Member cities (an applicant sees its own)")
async def list_members(
    principal: ApplicantOrOfficer,
    service: Intake,
    limit: int = limit_query(50, 200),
    offset: Offset = 0,
) -> MemberList:
    async with service.reading() as work:
        return await service.members(work, principal, limit=limit, offset=offset)


@router.post(
    "/members",
    tags=["members"],
    status_code=status.HTTP_201_CREATED,
    summary="Register a member city (program officers)",
    responses={**_CONFLICT, **_REFUSED},
)
async def create_member(body: MemberCreate, _principal: Officer, service: Intake) -> MemberView:
    async with service.work() as work:
        return await service.create_member(work, body)


@router.get(
    "/members/{member_id}", tags=["members"], summary="One member city", responses=_NOT_FOUND
)
async def get_member(
    member_id: MemberIdPath, principal: ApplicantOrOfficer, service: Intake
) -> MemberView:
    async with service.reading() as work:
        return await service.member(work, principal, member_id)


@router.patch(
    "/members/{member_id}",
    tags=["members"],
    summary="Change a member city (program officers); standing follows report events",
    responses={**_NOT_FOUND, **_REFUSED},
)
async def update_member(
    member_id: MemberIdPath, body: MemberUpdate, principal: Officer, service: Intake
) -> MemberView:
    async with service.work() as work:
        return await service.update_member(work, principal, member_id, body)


# --- exchange rates -------------------------------------------------------------------


@router.get("/exchange-rates", tags=["exchange rates"], summary="The conversion rates in use")
async def list_rates(
    _principal: Anyone,
    service: Intake,
    limit: int = limit_query(100, 500),
    offset: Offset = 0,
) -> RateList:
    async with service.reading() as work:
        return await service.rates(work, limit=limit, offset=offset)


@router.put(
    "/exchange-rates/{from_currency}/{to_currency}",
    tags=["exchange rates"],
    summary="Set a conversion rate (program officers)",
    responses={
        **_REFUSED,
        409: {"description": "a currency converts to itself at 1, a rate that cannot be set"},
    },
)
async def set_rate(
    from_currency: Currency,
    to_currency: Currency,
    body: RateUpdate,
    principal: Officer,
    service: Intake,
) -> RateView:
    async with service.work() as work:
        return await service.set_rate(work, principal, from_currency, to_currency, body.rate)


# --- applications ---------------------------------------------------------------------


@router.post(
    "/applications",
    tags=["applications"],
    status_code=status.HTTP_201_CREATED,
    summary="Start a draft application (it may be incomplete)",
    responses={**_UNKNOWN_PROGRAM, **_REFUSED},
)
async def create_application(
    body: DraftFields, principal: Applicant, service: Intake
) -> ApplicationView:
    async with service.work() as work:
        return await service.create_draft(work, principal, body)


@router.get(
    "/applications", tags=["applications"], summary="Applications (an applicant sees its own)"
)
async def list_applications(
    principal: ApplicantOrOfficer,
    service: Intake,
    program: Annotated[str | None, Query(max_length=40)] = None,
    application_status: Annotated[str | None, Query(alias="status", max_length=80)] = None,
    member_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: int = limit_query(20, 100),
    offset: Offset = 0,
) -> ApplicationList:
    async with service.reading() as work:
        return await service.applications(
            work,
            principal,
            program_code=program,
            status=application_status,
            member_id=member_id,
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
    application_id: ApplicationId, principal: ApplicantOrOfficer, service: Intake
) -> ApplicationView:
    async with service.reading() as work:
        return await service.application(work, principal, application_id)


@router.patch(
    "/applications/{application_id}",
    tags=["applications"],
    summary="Edit a draft: the fields sent replace the draft's",
    responses={**_NOT_FOUND, **_CONFLICT, **_REFUSED},
)
async def update_application(
    application_id: ApplicationId, body: DraftFields, principal: Applicant, service: Intake
) -> ApplicationView:
    async with service.work() as work:
        return await service.update_draft(work, principal, application_id, body)


@router.get(
    "/applications/{application_id}/checks",
    tags=["applications"],
    summary="Preview the submission checks of a draft",
    responses={**_NOT_FOUND, **_CONFLICT},
)
async def preview_checks(
    application_id: ApplicationId, principal: ApplicantOrOfficer, service: Intake
) -> ChecksView:
    async with service.reading() as work:
        return await service.preview(work, principal, application_id)


@router.post(
    "/applications/{application_id}/submit",
    summary="Submit a draft (idempotent with an Idempotency-Key header)",
    **_ACCEPTED,
)
async def submit_application(
    application_id: ApplicationId, call: ApplicantCall, body: SubmitRequest | None = None
) -> JSONResponse:
    version = body.draft_version if body else None
    return await call.run(
        body,
        lambda work: call.service.submit(work, call.principal, application_id, version),
        refuses_repeats=True,  # only a draft can be submitted
    )


@router.post(
    "/applications/{application_id}/withdraw",
    summary="Withdraw, with a reason; the workflow undoes what was done",
    **_ACCEPTED,
)
async def withdraw_application(
    application_id: ApplicationId, body: WithdrawRequest, call: ApplicantCall
) -> JSONResponse:
    return await call.run(
        body, lambda work: call.service.withdraw(work, call.principal, application_id, body.reason)
    )


@router.post(
    "/applications/{application_id}/resubmit",
    summary="Resubmit after a revision request",
    **_ACCEPTED,
)
async def resubmit_application(
    application_id: ApplicationId, body: ResubmitRequest, call: ApplicantCall
) -> JSONResponse:
    return await call.run(
        body, lambda work: call.service.resubmit(work, call.principal, application_id, body)
    )


@router.post(
    "/applications/{application_id}/amendments",
    summary="Ask to move the exchange dates, change the award or cancel, after an award",
    **_ACCEPTED,
)
async def request_amendment(
    application_id: ApplicationId, body: AmendmentRequest, call: ApplicantCall
) -> JSONResponse:
    return await call.run(
        body,
        lambda work: call.service.request_amendment(work, call.principal, application_id, body),
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
# The partner's link answers a browser with pages and a program with JSON.
_HTML: dict[str, Any] = {"content": {"text/html": {}}}
_PARTNER_ERRORS: Responses = {
    404: {"description": "the link is not valid", **_HTML},
    409: {"description": "the link was used already", **_HTML},
    410: {"description": "the link has expired", **_HTML},
}
PartnerToken = Annotated[
    str, Path(max_length=200, description="The signed one-time token from the partner's email.")
]


@router.get(
    "/partner-confirmations/{token}",
    tags=["partner confirmation"],
    summary="The page the partner's emailed link opens (no bearer token: the link is one)",
    response_class=HTMLResponse,
    responses=_PARTNER_ERRORS,
)
async def partner_page(token: PartnerToken, request: Request, service: Intake) -> HTMLResponse:
    try:
        async with service.reading() as work:
            info = await service.partner_link(work, token)
    except NotFoundError as error:
        return HTMLResponse(pages.message_page("Link not valid", error.message), 404)
    link = info.link
    if link.answered_at is not None:
        return HTMLResponse(pages.answered_page(bool(link.confirmed), info.member_name))
    draft = DraftFields.model_validate(info.application.draft)
    return HTMLResponse(
        pages.confirmation_page(
            action=request.url.path,
            partner_city=link.partner_city,
            member_name=info.member_name,
            title=info.application.title or "",
            exchange_start=draft.exchange_start.isoformat() if draft.exchange_start else "",
            exchange_end=draft.exchange_end.isoformat() if draft.exchange_end else "",
            due=link.due_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
    )


@router.post(
    "/partner-confirmations/{token}",
    tags=["partner confirmation"],
    summary="The partner confirms or declines; the link then stops working",
    response_model=PartnerAnswered,
    responses={200: _HTML, **_PARTNER_ERRORS},
    openapi_extra=_PARTNER_BODY,
)
async def partner_answer(token: PartnerToken, request: Request, service: Intake) -> Response:
    from_form = request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    )
    answer = _parse_partner_answer(await request.body(), from_form)
    try:
        async with service.work() as work:
            info = await service.answer_partner(work, token, answer)
    except (NotFoundError, ConflictError, GoneError) as error:
        if not from_form:
            raise
        return HTMLResponse(
            pages.message_page("This link cannot be used", error.message), error.status_code
        )
    if from_form:
        return HTMLResponse(pages.answered_page(bool(info.link.confirmed), info.member_name))
    return JSONResponse(PartnerAnswered.of(info.link).model_dump(mode="json"))


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
