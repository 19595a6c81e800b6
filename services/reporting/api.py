"""HTTP routes: applicants' reports and officers' analytics. Thin: parse, authorize, call."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import PlainTextResponse

from services.reporting.analytics.tables import AnalyticsTable, Dimension, TableName, to_csv
from services.reporting.domain import REPORT_ID_PATTERN, ReportDraftIn, ReportState
from services.reporting.persistence import ReportFilter, SummaryFilter
from services.reporting.schemas import ReportPage, ReportView
from services.reporting.service import ReportingService
from shared.auth import OFFICERS, Principal, Role, require
from shared.errors import ErrorBody
from shared.http import Offset, limit_query
from shared.service import the_service

router = APIRouter(prefix="/v1")

Reporting = Annotated[ReportingService, Depends(the_service)]
ReportId = Annotated[
    str, Path(pattern=REPORT_ID_PATTERN, description="The report's id, as in the report request.")
]
Reader = Annotated[Principal, Depends(require(Role.APPLICANT, *OFFICERS))]
Applicant = Annotated[Principal, Depends(require(Role.APPLICANT))]
Officer = Annotated[Principal, Depends(require(*OFFICERS))]
FilterText = Annotated[str | None, Query(min_length=1, max_length=255)]

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such report, or not the caller's member's"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": "The report's state does not allow this (approved, in review), or "
        "it breaks a rule of its grant or of a complete report (each problem named)",
    }
}


@router.get("/reports", tags=["reports"], summary="My report obligations, by due date")
async def list_reports(
    principal: Reader,
    service: Reporting,
    state: Annotated[ReportState | None, Query()] = None,
    application_id: FilterText = None,
    member_id: Annotated[
        str | None, Query(min_length=1, max_length=255, description="Officers only.")
    ] = None,
    limit: int = limit_query(50, 200),
    offset: Offset = 0,
) -> ReportPage:
    where = ReportFilter(member_id, application_id, state.value if state else None)
    async with service.reading() as work:
        return await service.list_reports(work, principal, where, limit=limit, offset=offset)


@router.get("/reports/{report_id}", tags=["reports"], summary="One report", responses=NOT_FOUND)
async def get_report(report_id: ReportId, principal: Reader, service: Reporting) -> ReportView:
    async with service.reading() as work:
        return await service.report(work, principal, report_id)


@router.put(
    "/reports/{report_id}",
    tags=["reports"],
    summary="Save the report as a draft",
    responses={**NOT_FOUND, **CONFLICT},
)
async def save_draft(
    report_id: ReportId, draft: ReportDraftIn, principal: Applicant, service: Reporting
) -> ReportView:
    async with service.work() as work:
        return await service.save_draft(work, principal, report_id, draft.draft())


@router.post(
    "/reports/{report_id}/submit",
    tags=["reports"],
    summary="Submit the report (the saved draft, or the body if one is given)",
    responses={**NOT_FOUND, **CONFLICT},
)
async def submit_report(
    report_id: ReportId,
    principal: Applicant,
    service: Reporting,
    draft: Annotated[ReportDraftIn | None, Body()] = None,
) -> ReportView:
    async with service.work() as work:
        return await service.submit(
            work, principal, report_id, draft.draft() if draft is not None else None
        )


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


def csv_response(table: AnalyticsTable) -> PlainTextResponse:
    return PlainTextResponse(
        to_csv(table),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{table.table.value}.csv"'},
    )


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
    service: Reporting,
    where: Filter,
    group_by: GroupBy = Dimension.PROGRAM,
) -> PlainTextResponse:
    async with service.reading() as work:
        return csv_response(await service.table(work, table, group_by, where))


@router.get("/analytics/{table}", tags=["analytics"], summary="One analytics table")
async def analytics_table(
    table: TableName,
    principal: Officer,
    service: Reporting,
    where: Filter,
    group_by: GroupBy = Dimension.PROGRAM,
) -> AnalyticsTable:
    async with service.reading() as work:
        return await service.table(work, table, group_by, where)
