"""HTTP routes: applicants' reports and officers' analytics. Thin: parse, authorize, call."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request, status
from fastapi.responses import JSONResponse, PlainTextResponse

from services.reporting.analytics import AnalyticsTable, Dimension, TableName, to_csv
from services.reporting.domain import (
    REPORT_ID_PATTERN,
    ReportConflictError,
    ReportDraft,
    ReportInvalidError,
    ReportState,
)
from services.reporting.persistence import SummaryFilter
from services.reporting.service import ReportingService, ReportNotFoundError, ReportPage, ReportView
from shared.auth import OFFICERS, Principal, Role, require

router = APIRouter(prefix="/v1")

ReportId = Annotated[
    str, Path(pattern=REPORT_ID_PATTERN, description="The report's id, as in the report request.")
]
Reader = Annotated[Principal, Depends(require(Role.APPLICANT, *OFFICERS))]
Applicant = Annotated[Principal, Depends(require(Role.APPLICANT))]
Officer = Annotated[Principal, Depends(require(*OFFICERS))]
FilterText = Annotated[str | None, Query(min_length=1, max_length=255)]

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such report, or not the caller's member's"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The report's state does not allow this (approved, in review)"}
}


async def reporting(request: Request) -> ReportingService:
    service: ReportingService = request.app.state.reporting
    return service


Service = Annotated[ReportingService, Depends(reporting)]


@router.get("/reports", tags=["reports"], summary="My report obligations, by due date")
async def list_reports(
    principal: Reader,
    service: Service,
    state: Annotated[ReportState | None, Query()] = None,
    application_id: FilterText = None,
    member_id: Annotated[
        str | None, Query(min_length=1, max_length=255, description="Officers only.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ReportPage:
    return await service.list_reports(
        principal,
        member_id=member_id,
        application_id=application_id,
        state=state,
        limit=limit,
        offset=offset,
    )


@router.get("/reports/{report_id}", tags=["reports"], summary="One report", responses={**NOT_FOUND})
async def get_report(report_id: ReportId, principal: Reader, service: Service) -> ReportView:
    return await service.get_report(principal, report_id)


@router.put(
    "/reports/{report_id}",
    tags=["reports"],
    summary="Save the report as a draft",
    responses={**NOT_FOUND, **CONFLICT},
)
async def save_draft(
    report_id: ReportId, draft: ReportDraft, principal: Applicant, service: Service
) -> ReportView:
    return await service.save_draft(principal, report_id, draft)


@router.post(
    "/reports/{report_id}/submit",
    tags=["reports"],
    summary="Submit the report (the saved draft, or the body if one is given)",
    responses={**NOT_FOUND, **CONFLICT},
)
async def submit_report(
    report_id: ReportId,
    principal: Applicant,
    service: Service,
    draft: Annotated[ReportDraft | None, Body()] = None,
) -> ReportView:
    return await service.submit(principal, report_id, draft)


async def _filter(
    program: FilterText = None,
    cycle: FilterText = None,
    focus_area: FilterText = None,
    partner_country: FilterText = None,
    member_id: FilterText = None,
) -> SummaryFilter:
    return SummaryFilter(program, cycle, focus_area, partner_country, member_id)


Filter = Annotated[SummaryFilter, Depends(_filter)]
GroupBy = Annotated[Dimension, Query(description="The dimension each row stands for.")]


@router.get(
    "/analytics/{table}.csv",
    tags=["analytics"],
    summary="One analytics table as CSV (money in integer minor units)",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def analytics_csv(
    table: TableName,
    principal: Officer,
    service: Service,
    where: Filter,
    group_by: GroupBy = Dimension.PROGRAM,
) -> PlainTextResponse:
    result = await service.table(table, group_by, where)
    return PlainTextResponse(
        to_csv(result),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{table.value}.csv"'},
    )


@router.get("/analytics/{table}", tags=["analytics"], summary="One analytics table")
async def analytics_table(
    table: TableName,
    principal: Officer,
    service: Service,
    where: Filter,
    group_by: GroupBy = Dimension.PROGRAM,
) -> AnalyticsTable:
    return await service.table(table, group_by, where)


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors become 404, 409 and 422 answers naming the field."""

    async def not_found(_request: Request, _error: Exception) -> JSONResponse:
        return JSONResponse({"detail": "report not found"}, status_code=status.HTTP_404_NOT_FOUND)

    async def conflict(_request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status.HTTP_409_CONFLICT)

    async def invalid(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ReportInvalidError)
        return JSONResponse(
            {
                "detail": [
                    {"loc": ["body", *problem.loc], "msg": problem.msg, "type": "value_error"}
                    for problem in error.errors
                ]
            },
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    app.add_exception_handler(ReportNotFoundError, not_found)
    app.add_exception_handler(ReportConflictError, conflict)
    app.add_exception_handler(ReportInvalidError, invalid)
