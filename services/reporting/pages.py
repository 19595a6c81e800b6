"""The officers' dashboard as server-rendered HTML: the overview and one page per program.

Jinja2 templates in ``templates/`` on the shared layout (``shared.web``); everything is in
the page: the shared stylesheet inline, charts as inline SVG (laid out by ``charts.py``,
drawn by ``templates/chart.html``), no script.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from services.reporting.analytics.summaries import PLANNED_OUTCOMES, ApplicationSummary
from services.reporting.analytics.tables import (
    AnalyticsTable,
    Cell,
    Dimension,
    TableName,
    best_label,
    build_table,
    group_of,
)
from services.reporting.charts import (
    PALETTE,
    Chart,
    Series,
    column_chart,
    horizontal_bar_chart,
)
from shared.contracts.money import MINOR_UNIT_EXPONENT, Money
from shared.web import Pages, Viewer

PAGES: Final = Pages(Path(__file__).parent / "templates", title="Analytics", home="/dashboard")

MEASURE_LABELS = {
    "decision": "Submission to decision",
    "first_payment": "Submission to first payment",
    "close": "Submission to close",
}
OUTCOME_LABELS = {
    "agreements_signed": "Agreements / MOUs",
    "trade_leads": "Trade leads",
    "jobs_created": "Jobs created",
    "students_exchanged": "Students exchanged",
    "follow_up_projects": "Follow-up projects",
}
PLANNED_LABELS = {name: OUTCOME_LABELS[name] for name in PLANNED_OUTCOMES}


def money(amount_minor: int, currency: str) -> str:
    if currency not in MINOR_UNIT_EXPONENT:
        return f"{amount_minor} {currency} (minor units)"
    return str(Money(amount_minor=amount_minor, currency=currency))


def duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _int(cell: Cell) -> int:
    return cell if isinstance(cell, int) else 0


def not_found_page(
    request: Request, viewer: Viewer, message: str, programs: Sequence[tuple[str, str]]
) -> HTMLResponse:
    return PAGES.render(
        request,
        "dashboard_missing.html",
        status_code=404,
        page_title="Not found",
        viewer=viewer,
        message=message,
        programs=programs,
    )


def programs_of(summaries: Sequence[ApplicationSummary]) -> list[tuple[str, str]]:
    labels: dict[str, str] = {}
    for summary in summaries:
        key, label = group_of(summary, Dimension.PROGRAM)
        labels[key] = best_label(key, labels.get(key), label)
    return sorted(labels.items())


def _kpis(summaries: Sequence[ApplicationSummary]) -> list[tuple[str, str]]:
    applications = build_table(TableName.APPLICATIONS, summaries, Dimension.ALL).rows
    reports = build_table(TableName.REPORTS, summaries, Dimension.ALL).rows
    row = applications[0] if applications else {}
    rate = row.get("approval_rate_bp")
    tiles = [
        ("Applications", str(_int(row.get("applications")))),
        ("Decided", str(_int(row.get("decided")))),
        ("Approval rate", f"{_int(rate) / 100:.1f} %" if isinstance(rate, int) else "-"),
    ]
    for money_row in build_table(TableName.MONEY, summaries, Dimension.ALL).rows:
        currency = str(money_row["currency"])
        tiles.append((f"Awarded ({currency})", money(_int(money_row["awarded_minor"]), currency)))
        tiles.append((f"Paid ({currency})", money(_int(money_row["paid_minor"]), currency)))
        asked = _int(money_row["refunded_minor"])
        if asked or _int(money_row["refund_received_minor"]):
            received = money(_int(money_row["refund_received_minor"]), currency)
            tiles.append(
                (f"Refunds received ({currency})", f"{received} of {money(asked, currency)}")
            )
    if reports:
        tiles.append(("Reports late", str(_int(reports[0]["late"]))))
    return tiles


def _status_chart(summaries: Sequence[ApplicationSummary]) -> Chart:
    rows = build_table(TableName.STATUSES, summaries, Dimension.ALL).rows
    counts = [_int(row["applications"]) for row in rows]
    return horizontal_bar_chart(
        chart_id="applications-by-status",
        title="Applications by status",
        labels=[str(row["stage"]).replace("_", " ") for row in rows],
        series=[Series("Applications", counts)],
        formatter=str,
        caption=f"{sum(counts)} applications",
    )


def _money_charts(summaries: Sequence[ApplicationSummary], by: Dimension) -> list[Chart]:
    table = build_table(TableName.MONEY, summaries, by)
    charts = []
    for currency in sorted({str(row["currency"]) for row in table.rows}):
        rows = [row for row in table.rows if row["currency"] == currency]
        named = (
            ("Requested", "requested_minor"),
            ("Awarded", "awarded_minor"),
            ("Paid", "paid_minor"),
            ("Refunds requested", "refunded_minor"),
            ("Refunds received", "refund_received_minor"),
        )
        series = [
            Series(name, [_int(row[column]) for row in rows], PALETTE[index])
            for index, (name, column) in enumerate(named)
        ]
        caption = " · ".join(f"{one.name} {money(sum(one.values), currency)}" for one in series)
        charts.append(
            horizontal_bar_chart(
                chart_id=f"money-by-{by.value}-{currency}",
                title=f"Money by {by.value.replace('_', ' ')} ({currency})",
                labels=[
                    str(row["group"] if by is Dimension.PROGRAM else row["label"]) for row in rows
                ],
                series=series,
                formatter=lambda value, c=currency: money(value, c),  # type: ignore[misc]
                caption=caption,
            )
        )
    return charts


def _cash_flow_charts(summaries: Sequence[ApplicationSummary]) -> list[Chart]:
    table = build_table(TableName.CASH_FLOW, summaries, Dimension.ALL)
    charts = []
    for currency in sorted({str(row["currency"]) for row in table.rows}):
        rows = [row for row in table.rows if row["currency"] == currency]
        paid = Series("Paid", [_int(row["paid_minor"]) for row in rows], PALETTE[2])
        due = Series("Due (projected)", [_int(row["due_minor"]) for row in rows], PALETTE[1])
        charts.append(
            column_chart(
                chart_id=f"cash-flow-{currency}",
                title=f"Cash flow by month ({currency})",
                labels=[str(row["month"]) for row in rows],
                series=[paid, due],
                formatter=lambda value, c=currency: money(value, c),  # type: ignore[misc]
                caption=f"Paid {money(sum(paid.values), currency)} · "
                f"Due {money(sum(due.values), currency)}",
            )
        )
    return charts


def _outcomes_chart(summaries: Sequence[ApplicationSummary]) -> Chart:
    rows = build_table(TableName.OUTCOMES, summaries, Dimension.ALL).rows
    row = rows[0] if rows else {}
    values = [_int(row.get(column)) for column in OUTCOME_LABELS]
    caption = f"From {_int(row.get('reports'))} reports: " + " · ".join(
        f"{label} {value}" for label, value in zip(OUTCOME_LABELS.values(), values, strict=True)
    )
    return horizontal_bar_chart(
        chart_id="outcomes",
        title="Outcomes reported",
        labels=list(OUTCOME_LABELS.values()),
        series=[Series("Outcomes", values, PALETTE[4])],
        formatter=str,
        caption=caption,
    )


def _planned_chart(summaries: Sequence[ApplicationSummary]) -> Chart:
    rows = build_table(TableName.PLANNED_VS_ACTUAL, summaries, Dimension.ALL).rows
    by_outcome = {str(row["outcome"]): row for row in rows}
    planned = [_int(by_outcome.get(name, {}).get("planned")) for name in PLANNED_LABELS]
    reported = [_int(by_outcome.get(name, {}).get("reported")) for name in PLANNED_LABELS]
    first = rows[0] if rows else {}
    answered = _int(first.get("applications_reported"))
    planning = _int(first.get("applications_planned"))
    caption = (
        f"{planning} application{'' if planning == 1 else 's'} with a plan, {answered} reported"
    )
    if answered:
        caption += " · difference where reported: " + " · ".join(
            f"{label} {_signed(by_outcome[name]['difference'])}"
            for name, label in PLANNED_LABELS.items()
        )
    return horizontal_bar_chart(
        chart_id="planned-vs-actual",
        title="Outcomes planned against reported",
        labels=list(PLANNED_LABELS.values()),
        series=[Series("Planned", planned, PALETTE[0]), Series("Reported", reported, PALETTE[2])],
        formatter=str,
        caption=caption,
    )


def _signed(cell: Cell) -> str:
    """A difference with its sign (more or fewer than planned); empty when not reported."""
    if not isinstance(cell, int):
        return ""
    return f"{cell:+d}" if cell else "0"


def _reports_chart(summaries: Sequence[ApplicationSummary]) -> Chart:
    rows = build_table(TableName.REPORTS, summaries, Dimension.ALL).rows
    row = rows[0] if rows else {}
    named = (("On time", "on_time"), ("Late", "late"), ("Overdue, not in", "overdue_outstanding"))
    values = [_int(row.get(column)) for _label, column in named]
    return horizontal_bar_chart(
        chart_id="reports",
        title="Post-exchange reports",
        labels=[label for label, _column in named],
        series=[Series("Reports", values, PALETTE[3])],
        formatter=str,
        caption=f"{_int(row.get('requested'))} requested · {_int(row.get('submitted'))} "
        f"submitted · {values[0]} on time · {values[1]} late",
    )


def _cycle_chart(summaries: Sequence[ApplicationSummary]) -> Chart:
    rows = build_table(TableName.CYCLE_TIMES, summaries, Dimension.ALL).rows
    values = [_int(row["mean_seconds"]) for row in rows]
    return horizontal_bar_chart(
        chart_id="cycle-times",
        title="Mean time from submission",
        labels=[MEASURE_LABELS[str(row["measure"])] for row in rows],
        series=[Series("Mean", values, PALETTE[5])],
        formatter=duration,
        caption=" · ".join(
            f"{MEASURE_LABELS[str(row['measure'])]}: "
            + (duration(_int(row["mean_seconds"])) if row["applications"] else "-")
            for row in rows
        ),
    )


# Headings that say more than the column's name does.
HEADINGS = {"refunded_minor": "refunds requested", "refund_received_minor": "refunds received"}


def _heading(column: str) -> str:
    if column in HEADINGS:
        return HEADINGS[column]
    for suffix, unit in (("_minor", ""), ("_bp", " (%)"), ("_seconds", "")):
        if column.endswith(suffix):
            return column.removesuffix(suffix).replace("_", " ") + unit
    return column.replace("_", " ")


def _table(table: AnalyticsTable, link_programs: bool = False) -> dict[str, Any]:
    """A table as the template shows it: headings, and each cell's text (and link)."""
    columns = [column for column in table.columns if column != "group"]
    rows = []
    for row in table.rows:
        cells: list[tuple[str, str]] = []
        for column in columns:
            value = row[column]
            text = "" if value is None else str(value)
            if column.endswith("_minor") and isinstance(value, int) and "currency" in row:
                text = money(value, str(row["currency"]))
            elif column.endswith("_bp") and isinstance(value, int):
                text = f"{value / 100:.1f} %"
            elif column.endswith("_seconds") and isinstance(value, int):
                text = duration(value)
            elif column == "difference":
                text = _signed(value)
            elif column == "outcome":
                text = OUTCOME_LABELS.get(text, text)
            link = ""
            if link_programs and column == "label":
                link = f"/dashboard/programs/{row['group']}"
            cells.append((text, link))
        rows.append(cells)
    return {
        "id": f"{table.table.value}-{table.group_by.value}",
        "head": [_heading(column) for column in columns],
        "rows": rows,
    }


def _exports(program: str | None) -> list[tuple[str, str]]:
    links = []
    for table in TableName:
        query = {"group_by": "program" if program is None else "cycle"}
        if program is not None:
            query["program"] = program
        links.append((f"/dashboard/export/{table.value}.csv?{urlencode(query)}", table.value))
    return links


def _charts(summaries: Sequence[ApplicationSummary], by: Dimension) -> list[Chart]:
    return [
        _status_chart(summaries),
        *_money_charts(summaries, by),
        *_cash_flow_charts(summaries),
        _outcomes_chart(summaries),
        _planned_chart(summaries),
        _reports_chart(summaries),
        _cycle_chart(summaries),
    ]


def _dashboard(
    request: Request,
    viewer: Viewer,
    title: str,
    programs: Sequence[tuple[str, str]],
    **content: Any,
) -> HTMLResponse:
    return PAGES.render(
        request,
        "dashboard.html",
        page_title=title,
        viewer=viewer,
        heading=title,
        programs=programs,
        **content,
    )


def overview_page(
    request: Request, viewer: Viewer, summaries: Sequence[ApplicationSummary]
) -> HTMLResponse:
    return _dashboard(
        request,
        viewer,
        "All programs",
        programs_of(summaries),
        kpis=_kpis(summaries),
        charts=_charts(summaries, Dimension.PROGRAM),
        sections=[
            (
                "Programs",
                [
                    _table(
                        build_table(TableName.APPLICATIONS, summaries, Dimension.PROGRAM),
                        link_programs=True,
                    ),
                    _table(build_table(TableName.MONEY, summaries, Dimension.PROGRAM)),
                ],
            ),
            (
                "Outcomes planned against reported",
                [_table(build_table(TableName.PLANNED_VS_ACTUAL, summaries, Dimension.PROGRAM))],
            ),
        ],
        exports=_exports(None),
    )


def program_page(
    request: Request,
    viewer: Viewer,
    program_code: str,
    summaries: Sequence[ApplicationSummary],
    programs: Sequence[tuple[str, str]],
) -> HTMLResponse:
    label = dict(programs).get(program_code, program_code)
    sections = [
        (
            f"By {dimension.value.replace('_', ' ')}",
            [
                _table(build_table(TableName.APPLICATIONS, summaries, dimension)),
                _table(build_table(TableName.MONEY, summaries, dimension)),
            ],
        )
        for dimension in (
            Dimension.CYCLE,
            Dimension.FOCUS_AREA,
            Dimension.PARTNER_COUNTRY,
            Dimension.MEMBER,
        )
    ]
    sections.append(
        (
            "Outcomes planned against reported, by application",
            [_table(build_table(TableName.PLANNED_VS_ACTUAL, summaries, Dimension.APPLICATION))],
        )
    )
    return _dashboard(
        request,
        viewer,
        f"{label} ({program_code})" if label != program_code else label,
        programs,
        kpis=_kpis(summaries),
        charts=_charts(summaries, Dimension.CYCLE),
        sections=sections,
        exports=_exports(program_code),
    )
