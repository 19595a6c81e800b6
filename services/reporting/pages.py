"""The officers' dashboard as server-rendered HTML: the overview and one page per program.

Everything is in the page: styles inline, charts as inline SVG (``charts.py``), no script.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import urlencode

from services.reporting.analytics.summaries import ApplicationSummary
from services.reporting.analytics.tables import (
    AnalyticsTable,
    Cell,
    Dimension,
    TableName,
    best_label,
    build_table,
    group_of,
)
from services.reporting.charts import PALETTE, Series, column_chart, horizontal_bar_chart
from shared.contracts.money import MINOR_UNIT_EXPONENT, Money

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1d2733;background:#f5f7fa}
header{background:#1d3f66;color:#fff;padding:12px 24px;display:flex;gap:24px;
align-items:center}
header a{color:#fff}header nav{display:flex;gap:14px;flex-wrap:wrap;flex:1}
header form{margin:0}main{padding:16px 24px;max-width:1400px}
.kpis{display:flex;gap:12px;flex-wrap:wrap;margin:8px 0 16px}
.kpi{background:#fff;border:1px solid #d8dee6;border-radius:6px;padding:10px 14px;
min-width:150px}
.kpi b{display:block;font-size:20px}.kpi span{color:#5a6776;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure.chart{background:#fff;border:1px solid #d8dee6;border-radius:6px;margin:0;
padding:10px 12px}
figure.chart h3{margin:0 0 6px;font-size:15px}
figcaption{color:#34414f;font-size:13px;margin-top:6px}
.legend{list-style:none;display:flex;gap:12px;padding:0;margin:4px 0;font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
table{border-collapse:collapse;background:#fff;margin:8px 0 20px;font-size:13px}
th,td{border:1px solid #d8dee6;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
.exports a{margin-right:10px}
.notice{background:#fff;border:1px solid #d8dee6;padding:16px;max-width:520px}
"""

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


def _page(title: str, body: str, programs: Sequence[tuple[str, str]] = ()) -> str:
    links = "".join(
        f"<a href='/dashboard/programs/{escape(code, quote=True)}'>{escape(code)}</a>"
        for code, _label in programs
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} · grantflow</title><style>{STYLE}</style></head><body>"
        f"<header><strong>grantflow analytics</strong><nav><a href='/dashboard'>Overview</a>{links}"
        "</nav><form method='post' action='/dashboard/sign-out'>"
        "<button type='submit'>Sign out</button></form></header>"
        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )


def sign_in_page(message: str) -> str:
    body = (
        f"<div class='notice'><p>{escape(message)}</p>"
        "<form method='post' action='/dashboard/sign-in'>"
        "<label>Program officer token<br><input name='token' type='password' size='60' "
        "autocomplete='off' required></label> <button type='submit'>Sign in</button>"
        "</form></div>"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Sign in · grantflow</title><style>{STYLE}</style></head><body>"
        "<header><strong>grantflow analytics</strong></header>"
        f"<main><h1>Sign in</h1>{body}</main></body></html>"
    )


def forbidden_page(message: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Forbidden · grantflow</title><style>{STYLE}</style></head><body>"
        "<header><strong>grantflow analytics</strong></header>"
        f"<main><h1>Forbidden</h1><div class='notice'><p>{escape(message)}</p>"
        "<form method='post' action='/dashboard/sign-out'><button type='submit'>"
        "Sign in as someone else</button></form></div></main></body></html>"
    )


def programs_of(summaries: Sequence[ApplicationSummary]) -> list[tuple[str, str]]:
    labels: dict[str, str] = {}
    for summary in summaries:
        key, label = group_of(summary, Dimension.PROGRAM)
        labels[key] = best_label(key, labels.get(key), label)
    return sorted(labels.items())


def _kpis(summaries: Sequence[ApplicationSummary]) -> str:
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
    if reports:
        tiles.append(("Reports late", str(_int(reports[0]["late"]))))
    return (
        "<div class='kpis'>"
        + "".join(
            f"<div class='kpi'><b>{escape(value)}</b><span>{escape(name)}</span></div>"
            for name, value in tiles
        )
        + "</div>"
    )


def _status_chart(summaries: Sequence[ApplicationSummary]) -> str:
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


def _money_charts(summaries: Sequence[ApplicationSummary], by: Dimension) -> list[str]:
    table = build_table(TableName.MONEY, summaries, by)
    charts = []
    for currency in sorted({str(row["currency"]) for row in table.rows}):
        rows = [row for row in table.rows if row["currency"] == currency]
        named = (
            ("Requested", "requested_minor"),
            ("Awarded", "awarded_minor"),
            ("Paid", "paid_minor"),
            ("Refunded", "refunded_minor"),
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


def _cash_flow_charts(summaries: Sequence[ApplicationSummary]) -> list[str]:
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


def _outcomes_chart(summaries: Sequence[ApplicationSummary]) -> str:
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


def _reports_chart(summaries: Sequence[ApplicationSummary]) -> str:
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


def _cycle_chart(summaries: Sequence[ApplicationSummary]) -> str:
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


def _heading(column: str) -> str:
    for suffix, unit in (("_minor", ""), ("_bp", " (%)"), ("_seconds", "")):
        if column.endswith(suffix):
            return column.removesuffix(suffix).replace("_", " ") + unit
    return column.replace("_", " ")


def _html_table(table: AnalyticsTable, link_programs: bool = False) -> str:
    columns = [column for column in table.columns if column != "group"]
    head = "".join(f"<th>{escape(_heading(column))}</th>" for column in columns)
    body = []
    for row in table.rows:
        cells = []
        for column in columns:
            value = row[column]
            text = "" if value is None else str(value)
            if column.endswith("_minor") and isinstance(value, int) and "currency" in row:
                text = money(value, str(row["currency"]))
            elif column.endswith("_bp") and isinstance(value, int):
                text = f"{value / 100:.1f} %"
            elif column.endswith("_seconds") and isinstance(value, int):
                text = duration(value)
            if link_programs and column == "label":
                href = f"/dashboard/programs/{escape(str(row['group']), quote=True)}"
                cells.append(f"<td><a href='{href}'>{escape(text)}</a></td>")
            else:
                cells.append(f"<td>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<table data-table='{escape(table.table.value)}-{escape(table.group_by.value)}'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _exports(program: str | None) -> str:
    links = []
    for table in TableName:
        query = {"group_by": "program" if program is None else "cycle"}
        if program is not None:
            query["program"] = program
        href = f"/dashboard/export/{table.value}.csv?{urlencode(query)}"
        links.append(f"<a href='{escape(href, quote=True)}'>{escape(table.value)}.csv</a>")
    return "<h2>Exports (CSV)</h2><p class='exports'>" + "".join(links) + "</p>"


def overview_page(summaries: Sequence[ApplicationSummary]) -> str:
    programs = programs_of(summaries)
    charts = [
        _status_chart(summaries),
        *_money_charts(summaries, Dimension.PROGRAM),
        *_cash_flow_charts(summaries),
        _outcomes_chart(summaries),
        _reports_chart(summaries),
        _cycle_chart(summaries),
    ]
    body = (
        _kpis(summaries)
        + "<div class='charts'>"
        + "".join(charts)
        + "</div><h2>Programs</h2>"
        + _html_table(
            build_table(TableName.APPLICATIONS, summaries, Dimension.PROGRAM), link_programs=True
        )
        + _html_table(build_table(TableName.MONEY, summaries, Dimension.PROGRAM))
        + _exports(None)
    )
    return _page("All programs", body, programs)


def program_page(
    program_code: str,
    summaries: Sequence[ApplicationSummary],
    programs: Sequence[tuple[str, str]],
) -> str:
    label = dict(programs).get(program_code, program_code)
    charts = [
        _status_chart(summaries),
        *_money_charts(summaries, Dimension.CYCLE),
        *_cash_flow_charts(summaries),
        _outcomes_chart(summaries),
        _reports_chart(summaries),
        _cycle_chart(summaries),
    ]
    breakdowns = "".join(
        f"<h2>By {dimension.value.replace('_', ' ')}</h2>"
        + _html_table(build_table(TableName.APPLICATIONS, summaries, dimension))
        + _html_table(build_table(TableName.MONEY, summaries, dimension))
        for dimension in (
            Dimension.CYCLE,
            Dimension.FOCUS_AREA,
            Dimension.PARTNER_COUNTRY,
            Dimension.MEMBER,
        )
    )
    body = (
        _kpis(summaries)
        + "<div class='charts'>"
        + "".join(charts)
        + "</div>"
        + breakdowns
        + _exports(program_code)
    )
    return _page(f"{label} ({program_code})" if label != program_code else label, body, programs)
