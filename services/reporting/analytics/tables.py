"""The tables officers read and export: summaries added up by a dimension, and as CSV.

Money stays in integer minor units, one row per currency: amounts in different
currencies are never added together.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from services.reporting.analytics.summaries import (
    CLOSED_STAGES,
    PLANNED_OUTCOMES,
    ApplicationSummary,
)
from shared.contracts.money import Money
from shared.contracts.stages import Stage


class Dimension(StrEnum):
    ALL = "all"
    PROGRAM = "program"
    CYCLE = "cycle"
    FOCUS_AREA = "focus_area"
    PARTNER_COUNTRY = "partner_country"
    MEMBER = "member"
    APPLICATION = "application"


class TableName(StrEnum):
    APPLICATIONS = "applications"
    STATUSES = "statuses"
    MONEY = "money"
    BUDGET_CURRENCIES = "budget-currencies"
    CYCLE_TIMES = "cycle-times"
    REPORTS = "reports"
    OUTCOMES = "outcomes"
    PLANNED_VS_ACTUAL = "planned-vs-actual"
    CASH_FLOW = "cash-flow"


Cell = str | int | None


class AnalyticsTable(BaseModel):
    table: TableName
    group_by: Dimension
    columns: list[str]
    rows: list[dict[str, Cell]]


def group_of(summary: ApplicationSummary, by: Dimension) -> tuple[str, str]:
    """The key and label of the group an application falls in."""
    match by:
        case Dimension.ALL:
            return "all", "All programs"
        case Dimension.PROGRAM:
            return summary.program_code, summary.program_name or summary.program_code
        case Dimension.CYCLE:
            return summary.cycle, summary.cycle
        case Dimension.FOCUS_AREA:
            return summary.focus_area, summary.focus_area.replace("_", " ")
        case Dimension.PARTNER_COUNTRY:
            return summary.partner_country, summary.partner_country
        case Dimension.MEMBER:
            return summary.member_id, summary.member_name or summary.member_id
        case Dimension.APPLICATION:
            who = summary.member_name or summary.member_id
            return summary.application_id, f"{summary.application_id} ({who})"


def best_label(key: str, known: str | None, candidate: str) -> str:
    """The most informative label of a group, whatever the order the candidates come in."""
    if known is None:
        return candidate
    return max(known, candidate, key=lambda text: (text != key, text))


def _groups(
    summaries: Sequence[ApplicationSummary], by: Dimension
) -> list[tuple[str, str, list[ApplicationSummary]]]:
    grouped: dict[str, list[ApplicationSummary]] = defaultdict(list)
    labels: dict[str, str] = {}
    for summary in summaries:
        key, label = group_of(summary, by)
        grouped[key].append(summary)
        labels[key] = best_label(key, labels.get(key), label)
    return [(key, labels[key], grouped[key]) for key in sorted(grouped)]


def _rate_bp(part: int, whole: int) -> int | None:
    return part * 10_000 // whole if whole else None


def _applications(summaries: Sequence[ApplicationSummary], by: Dimension) -> AnalyticsTable:
    rows: list[dict[str, Cell]] = []
    for key, label, members in _groups(summaries, by):
        awarded = sum(1 for s in members if s.decision == "awarded")
        declined = sum(1 for s in members if s.decision == "declined")
        scores = [score for s in members for score in s.review_scores_bp]
        rows.append(
            {
                "group": key,
                "label": label,
                "applications": len(members),
                "decided": awarded + declined,
                "awarded": awarded,
                "declined": declined,
                "approval_rate_bp": _rate_bp(awarded, awarded + declined),
                "withdrawn": sum(1 for s in members if s.stage == "withdrawn"),
                "waitlisted": sum(1 for s in members if s.waitlisted),
                "closed": sum(1 for s in members if s.closed),
                "reviews": len(scores),
                "mean_score_bp": sum(scores) // len(scores) if scores else None,
            }
        )
    return _table(TableName.APPLICATIONS, by, rows)


def _statuses(summaries: Sequence[ApplicationSummary], by: Dimension) -> AnalyticsTable:
    rows: list[dict[str, Cell]] = []
    for key, label, members in _groups(summaries, by):
        counts: dict[str, int] = defaultdict(int)
        for summary in members:
            counts[summary.stage] += 1
        rows += [
            {"group": key, "label": label, "stage": stage, "applications": counts[stage]}
            for stage in sorted(counts)
        ]
    return _table(TableName.STATUSES, by, rows)


MONEY_COLUMNS = (
    "requested_minor",
    "awarded_minor",
    "reserved_minor",
    "paid_minor",
    "refunded_minor",
    "refund_received_minor",
    "released_minor",
    "actual_spending_minor",
)


def _money_by_currency(members: Sequence[ApplicationSummary]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(MONEY_COLUMNS, 0))

    def add(column: str, money: Money | None) -> None:
        if money is not None:
            totals[money.currency][column] += money.amount_minor

    for summary in members:
        add("requested_minor", summary.requested)
        add("awarded_minor", summary.awarded)
        for column, amounts in (
            ("reserved_minor", summary.reserved),
            ("paid_minor", summary.paid),
            ("refunded_minor", summary.refunded),
            ("refund_received_minor", summary.refund_received),
            ("released_minor", summary.released),
        ):
            for currency, amount in amounts.by_currency.items():
                totals[currency][column] += amount
        for report in summary.reports:
            add("actual_spending_minor", report.actual_spending)
    return totals


def _money_table(summaries: Sequence[ApplicationSummary], by: Dimension) -> AnalyticsTable:
    rows: list[dict[str, Cell]] = []
    for key, label, members in _groups(summaries, by):
        totals = _money_by_currency(members)
        rows += [
            {"group": key, "label": label, "currency": currency, **totals[currency]}
            for currency in sorted(totals)
        ]
    return _table(TableName.MONEY, by, rows)


def _budget_currencies(summaries: Sequence[ApplicationSummary], by: Dimension) -> AnalyticsTable:
    rows: list[dict[str, Cell]] = []
    for key, label, members in _groups(summaries, by):
        totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for summary in members:
            for line in summary.budget:
                total = totals[(line.currency, line.converted_currency)]
                total[0] += line.amount_minor
                total[1] += line.converted_minor
        rows += [
            {
                "group": key,
                "label": label,
                "currency": currency,
                "amount_minor": amount,
                "converted_currency": converted_currency,
                "converted_minor": converted,
            }
            for (currency, converted_currency), (amount, converted) in sorted(totals.items())
        ]
    return _table(TableName.BUDGET_CURRENCIES, by, rows)


CYCLE_MEASURES: tuple[tuple[str, Callable[[ApplicationSummary], datetime | None]], ...] = (
    ("decision", lambda s: s.decided_at),
    ("first_payment", lambda s: s.first_paid_at),
    ("close", lambda s: s.closed_at),
)


def _cycle_times(summaries: Sequence[ApplicationSummary], by: Dimension) -> AnalyticsTable:
    rows: list[dict[str, Cell]] = []
    for key, label, members in _groups(summaries, by):
        for measure, reached in CYCLE_MEASURES:
            seconds = []
            for summary in members:
                end = reached(summary)
                if summary.submitted_at is not None and end is not None:
                    elapsed = int((end - summary.submitted_at).total_seconds())
                    if elapsed >= 0:
                        seconds.append(elapsed)
            rows.append(
                {
                    "group": key,
                    "label": label,
                    "measure": measure,
                    "applications": len(seconds),
                    "mean_seconds": sum(seconds) // len(seconds) if seconds else None,
                    "median_seconds": int(statistics.median(seconds)) if seconds else None,
                    "max_seconds": max(seconds) if seconds else None,
                }
            )
    return _table(TableName.CYCLE_TIMES, by, rows)


def _reports_table(summaries: Sequence[ApplicationSummary], by: Dimension) -> AnalyticsTable:
    rows: list[dict[str, Cell]] = []
    for key, label, members in _groups(summaries, by):
        reports = [report for summary in members for report in summary.reports]
        rows.append(
            {
                "group": key,
                "label": label,
                "requested": len(reports),
                "submitted": sum(1 for r in reports if r.submitted),
                "on_time": sum(1 for r in reports if r.late is False),
                "late": sum(1 for r in reports if r.late is True),
                "overdue_outstanding": sum(1 for r in reports if r.overdue and not r.submitted),
                "approved": sum(1 for r in reports if r.review == "approved"),
                "changes_requested": sum(1 for r in reports if r.review == "changes_requested"),
            }
        )
    return _table(TableName.REPORTS, by, rows)


OUTCOME_COLUMNS = (
    "agreements_signed",
    "trade_leads",
    "jobs_created",
    "students_exchanged",
    "follow_up_projects",
    "adults",
    "youth",
)


def _outcomes(summaries: Sequence[ApplicationSummary], by: Dimension) -> AnalyticsTable:
    rows: list[dict[str, Cell]] = []
    for key, label, members in _groups(summaries, by):
        reports = [r for summary in members for r in summary.reports if r.submitted]
        row: dict[str, Cell] = {"group": key, "label": label, "reports": len(reports)}
        for column in OUTCOME_COLUMNS:
            row[column] = sum(report.figures.get(column, 0) for report in reports)
        rows.append(row)
    return _table(TableName.OUTCOMES, by, rows)


ENDED_WITHOUT_EXCHANGE = CLOSED_STAGES - {Stage.CLOSED.value}


def _planned_vs_actual(summaries: Sequence[ApplicationSummary], by: Dimension) -> AnalyticsTable:
    """Per outcome: what the applications planned, what their reports give, the difference.

    The difference is the sum of each reported application's own (reported - planned), so
    an application whose report is not in yet adds to the plan only and does not count as
    a shortfall. Left out: applications submitted before expected outcomes were carried
    (no plan to compare with), and those that ended without an exchange and without a
    report (declined, withdrawn, cancelled ...), whose plan will never be carried out. A
    group of only such applications has no rows.
    """
    rows: list[dict[str, Cell]] = []
    for key, label, members in _groups(summaries, by):
        plans = [
            (s.planned_outcomes, s.reported_outcomes)
            for s in members
            if s.stage not in ENDED_WITHOUT_EXCHANGE or s.reported_outcomes is not None
        ]
        planned = [plan for plan, _reported in plans if plan is not None]
        if not planned:
            continue
        answered = [
            (plan, reported)
            for plan, reported in plans
            if plan is not None and reported is not None
        ]
        for outcome in PLANNED_OUTCOMES:
            rows.append(
                {
                    "group": key,
                    "label": label,
                    "outcome": outcome,
                    "applications_planned": len(planned),
                    "planned": sum(plan[outcome] for plan in planned),
                    "applications_reported": len(answered),
                    "reported": (
                        sum(reported[outcome] for _plan, reported in answered) if answered else None
                    ),
                    "difference": (
                        sum(reported[outcome] - plan[outcome] for plan, reported in answered)
                        if answered
                        else None
                    ),
                }
            )
    return _table(TableName.PLANNED_VS_ACTUAL, by, rows)


def _cash_flow(summaries: Sequence[ApplicationSummary], by: Dimension) -> AnalyticsTable:
    """Per month: what was paid, and what the open awards' schedules still have due."""
    rows: list[dict[str, Cell]] = []
    for key, label, members in _groups(summaries, by):
        months: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for summary in members:
            for payment in summary.payments:
                month = months[(payment.paid_on.strftime("%Y-%m"), payment.amount.currency)]
                month[1] += payment.amount.amount_minor
            if summary.closed:
                continue
            for tranche in summary.tranches:
                if tranche.paid:
                    continue
                when = tranche.due_on.strftime("%Y-%m") if tranche.due_on else "unscheduled"
                month = months[(when, tranche.amount.currency)]
                month[0] += tranche.amount.amount_minor
                month[2] += 1
        rows += [
            {
                "group": key,
                "label": label,
                "month": month,
                "currency": currency,
                "due_minor": due,
                "paid_minor": paid,
                "tranches_due": count,
            }
            for (month, currency), (due, paid, count) in sorted(months.items())
        ]
    return _table(TableName.CASH_FLOW, by, rows)


def _table(name: TableName, by: Dimension, rows: list[dict[str, Cell]]) -> AnalyticsTable:
    return AnalyticsTable(table=name, group_by=by, columns=TABLE_COLUMNS[name], rows=rows)


TABLE_COLUMNS: dict[TableName, list[str]] = {
    TableName.APPLICATIONS: [
        "group",
        "label",
        "applications",
        "decided",
        "awarded",
        "declined",
        "approval_rate_bp",
        "withdrawn",
        "waitlisted",
        "closed",
        "reviews",
        "mean_score_bp",
    ],
    TableName.STATUSES: ["group", "label", "stage", "applications"],
    TableName.MONEY: ["group", "label", "currency", *MONEY_COLUMNS],
    TableName.BUDGET_CURRENCIES: [
        "group",
        "label",
        "currency",
        "amount_minor",
        "converted_currency",
        "converted_minor",
    ],
    TableName.CYCLE_TIMES: [
        "group",
        "label",
        "measure",
        "applications",
        "mean_seconds",
        "median_seconds",
        "max_seconds",
    ],
    TableName.REPORTS: [
        "group",
        "label",
        "requested",
        "submitted",
        "on_time",
        "late",
        "overdue_outstanding",
        "approved",
        "changes_requested",
    ],
    TableName.OUTCOMES: ["group", "label", "reports", *OUTCOME_COLUMNS],
    TableName.PLANNED_VS_ACTUAL: [
        "group",
        "label",
        "outcome",
        "applications_planned",
        "planned",
        "applications_reported",
        "reported",
        "difference",
    ],
    TableName.CASH_FLOW: [
        "group",
        "label",
        "month",
        "currency",
        "due_minor",
        "paid_minor",
        "tranches_due",
    ],
}

TABLE_BUILDERS: dict[
    TableName, Callable[[Sequence[ApplicationSummary], Dimension], AnalyticsTable]
] = {
    TableName.APPLICATIONS: _applications,
    TableName.STATUSES: _statuses,
    TableName.MONEY: _money_table,
    TableName.BUDGET_CURRENCIES: _budget_currencies,
    TableName.CYCLE_TIMES: _cycle_times,
    TableName.REPORTS: _reports_table,
    TableName.OUTCOMES: _outcomes,
    TableName.PLANNED_VS_ACTUAL: _planned_vs_actual,
    TableName.CASH_FLOW: _cash_flow,
}


def build_table(
    name: TableName, summaries: Sequence[ApplicationSummary], by: Dimension
) -> AnalyticsTable:
    return TABLE_BUILDERS[name](summaries, by)


def to_csv(table: AnalyticsTable) -> str:
    """The table as CSV with a header row; money stays in integer minor units."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=table.columns, lineterminator="\n")
    writer.writeheader()
    for row in table.rows:
        writer.writerow(
            {column: "" if row[column] is None else row[column] for column in table.columns}
        )
    return out.getvalue()
