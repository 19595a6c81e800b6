"""The officers' dashboard at ``/dashboard``: the overview, one page per program, and the
analytics tables as CSV.

Officers sign in as on every page (``shared.web``): the token pasted into the sign-in
form is kept in an HttpOnly, SameSite=Strict cookie scoped to ``/dashboard``, and signing
out is a form carrying its CSRF value. Programs calling the analytics with a bearer header
use the JSON API (``/v1/analytics``), not these pages.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response

from services.reporting import pages
from services.reporting.analytics.tables import Dimension, TableName
from services.reporting.api import Filter, Reporting, csv_response
from shared.auth import OFFICERS
from shared.web import Door, add_sign_in_routes

DOOR: Final = Door(
    "/dashboard",
    cookie="grantflow_dashboard",
    roles=OFFICERS,
    refusal="The dashboard is for program officers",
)
PROGRAM_CODE_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"

router = APIRouter(prefix="/dashboard", include_in_schema=False)
SIGN_IN: Final = add_sign_in_routes(router, DOOR, pages.PAGES, who="a program officer")


@router.get("")
async def overview(request: Request, service: Reporting) -> Response:
    viewer = await SIGN_IN.viewer(request)
    if isinstance(viewer, HTMLResponse):
        return viewer
    async with service.reading() as work:
        summaries = await service.summaries(work)
    return pages.overview_page(request, viewer, summaries)


@router.get("/programs/{program_code}")
async def program(
    request: Request,
    program_code: Annotated[str, PathParam(pattern=PROGRAM_CODE_PATTERN)],
    service: Reporting,
) -> Response:
    viewer = await SIGN_IN.viewer(request)
    if isinstance(viewer, HTMLResponse):
        return viewer
    async with service.reading() as work:
        everything = await service.summaries(work)
    programs = pages.programs_of(everything)
    if program_code not in dict(programs):
        message = f"No application in program {program_code} yet."
        return pages.not_found_page(request, viewer, message, programs)
    chosen = [summary for summary in everything if summary.program_code == program_code]
    return pages.program_page(request, viewer, program_code, chosen, programs)


@router.get("/export/{table}.csv")
async def export(
    request: Request,
    table: TableName,
    service: Reporting,
    where: Filter,
    group_by: Annotated[Dimension, Query()] = Dimension.PROGRAM,
) -> Response:
    viewer = await SIGN_IN.viewer(request)
    if isinstance(viewer, HTMLResponse):
        return viewer
    async with service.reading() as work:
        answer = csv_response(await service.table(work, table, group_by, where))
    answer.headers["Cache-Control"] = "no-store"  # signed-in data: no cache may keep it
    return answer
