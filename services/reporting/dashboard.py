"""The officers' dashboard: HTML pages, signed in with a bearer token kept in a cookie.

A browser cannot send an Authorization header by itself, so the token arrives once, as
``/dashboard?token=...`` (the link ``grantflow up`` prints) or through the sign-in form,
and is then kept in an HttpOnly, SameSite=Strict cookie; the address bar is cleaned by a
redirect. An Authorization header works too.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from services.reporting import pages
from services.reporting.analytics.tables import Dimension, TableName
from services.reporting.api import Filter, Reporting, csv_response
from shared.auth import Auth, InvalidTokenError, Principal, SigningKeysUnavailableError


class _PrivatePage(APIRoute):
    """Every dashboard answer is about signed-in data: no cache may keep it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def private(request: Request) -> Response:
            response = await handler(request)
            response.headers["Cache-Control"] = "no-store"
            return response

        return private


router = APIRouter(prefix="/dashboard", tags=["dashboard"], route_class=_PrivatePage)

COOKIE = "grantflow_dashboard"
PROGRAM_CODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

SIGN_IN_FORM = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"token": {"type": "string"}},
                    "required": ["token"],
                }
            }
        },
        "required": True,
    }
}
PAGE_RESPONSES: dict[int | str, dict[str, str]] = {
    303: {"description": "Signed in from ?token=: the same page without the token"},
    401: {"description": "Not signed in: the sign-in form"},
    403: {"description": "Signed in, but not as a program officer"},
    503: {"description": "Token signing keys are unavailable; try again later"},
}


class _RefusedError(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def _verify(request: Request, token: str) -> Principal:
    auth = request.app.state.auth
    assert isinstance(auth, Auth)
    try:
        if auth.verifier.fetches_keys:
            return await run_in_threadpool(auth.verifier.verify, token)
        return auth.verifier.verify(token)
    except InvalidTokenError as error:
        raise _RefusedError(_sign_in(f"That token cannot be used: {error}.")) from error
    except SigningKeysUnavailableError as error:
        raise _RefusedError(
            HTMLResponse(
                pages.forbidden_page("Token signing keys are unavailable; try again later."),
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        ) from error


def _sign_in(message: str) -> HTMLResponse:
    response = HTMLResponse(pages.sign_in_page(message), status_code=status.HTTP_401_UNAUTHORIZED)
    response.delete_cookie(COOKIE, path="/dashboard")
    return response


def _officer_only(principal: Principal) -> None:
    if not principal.is_officer:
        raise _RefusedError(
            HTMLResponse(
                pages.forbidden_page(
                    f"The dashboard is for program officers; you are signed in as "
                    f"{principal.role.value}."
                ),
                status_code=status.HTTP_403_FORBIDDEN,
            )
        )


def _keep_signed_in(request: Request, response: Response, token: str) -> Response:
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/dashboard",
    )
    return response


async def _officer(request: Request) -> Principal:
    """The signed-in officer; raises _RefusedError with the page to show instead."""
    from_query = request.query_params.get("token")
    if from_query:
        _officer_only(await _verify(request, from_query))
        rest = [(key, value) for key, value in request.query_params.multi_items() if key != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        raise _RefusedError(
            _keep_signed_in(
                request, RedirectResponse(target, status.HTTP_303_SEE_OTHER), from_query
            )
        )
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    token = token or request.cookies.get(COOKIE)
    if not token:
        raise _RefusedError(_sign_in("Sign in with a program officer's token."))
    principal = await _verify(request, token)
    _officer_only(principal)
    return principal


async def _page_or_refusal(request: Request) -> Principal | Response:
    try:
        return await _officer(request)
    except _RefusedError as refused:
        return refused.response


SignedIn = Annotated[Principal | Response, Depends(_page_or_refusal)]
# Read by ``_officer``; declared on the pages so that the API document shows it.
TokenInQuery = Annotated[str | None, Query(description="Sign in with this token.")]


@router.get(
    "",
    summary="Analytics overview (program officers)",
    response_class=HTMLResponse,
    responses=PAGE_RESPONSES,
)
async def overview(
    signed_in: SignedIn,
    service: Reporting,
    token: TokenInQuery = None,
) -> Response:
    if isinstance(signed_in, Response):
        return signed_in
    async with service.reading() as work:
        return HTMLResponse(pages.overview_page(await service.summaries(work)))


@router.get(
    "/programs/{program_code}",
    summary="One program's analytics (program officers)",
    response_class=HTMLResponse,
    responses={**PAGE_RESPONSES, 404: {"description": "No application in this program yet"}},
)
async def program(
    program_code: Annotated[str, Path(pattern=PROGRAM_CODE_PATTERN)],
    signed_in: SignedIn,
    service: Reporting,
    token: TokenInQuery = None,
) -> Response:
    if isinstance(signed_in, Response):
        return signed_in
    async with service.reading() as work:
        everything = await service.summaries(work)
    programs = pages.programs_of(everything)
    if program_code not in dict(programs):
        return HTMLResponse(
            pages.forbidden_page(f"No application in program {program_code} yet.").replace(
                "Forbidden", "Not found"
            ),
            status_code=status.HTTP_404_NOT_FOUND,
        )
    chosen = [summary for summary in everything if summary.program_code == program_code]
    return HTMLResponse(pages.program_page(program_code, chosen, programs))


@router.get(
    "/export/{table}.csv",
    summary="One analytics table as CSV (program officers, signed in)",
    response_class=PlainTextResponse,
    responses={**PAGE_RESPONSES, 200: {"content": {"text/csv": {}}}},
)
async def export(
    table: TableName,
    signed_in: SignedIn,
    service: Reporting,
    where: Filter,
    group_by: Annotated[Dimension, Query()] = Dimension.PROGRAM,
) -> Response:
    if isinstance(signed_in, Response):
        return signed_in
    async with service.reading() as work:
        return csv_response(await service.table(work, table, group_by, where))


@router.post(
    "/sign-in",
    summary="Sign in to the dashboard with a token (form)",
    response_class=HTMLResponse,
    openapi_extra=SIGN_IN_FORM,
    responses=PAGE_RESPONSES,
)
async def sign_in(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    token = (form.get("token") or [""])[0].strip()
    if not token:
        return _sign_in("Enter a program officer's token.")
    try:
        _officer_only(await _verify(request, token))
    except _RefusedError as refused:
        return refused.response
    return _keep_signed_in(
        request, RedirectResponse("/dashboard", status.HTTP_303_SEE_OTHER), token
    )


@router.post(
    "/sign-out",
    summary="Sign out of the dashboard",
    response_class=RedirectResponse,
    status_code=status.HTTP_303_SEE_OTHER,
)
async def sign_out() -> Response:
    response = RedirectResponse("/dashboard", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path="/dashboard")
    return response
