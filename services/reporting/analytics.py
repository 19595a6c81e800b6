"""Program analytics: events become facts, facts become one summary per application,
summaries add up to the tables officers read.

Order-independence and idempotence come from the shape, not from care in each handler:

- an event becomes facts keyed by a business key (a status event by its sequence, a
  settlement by its instruction id, a reservation by its command id ...), so a duplicate,
  even one re-sent under a new event id, is the same fact;
- an application's summary is a pure function of the set of its facts, so the order in
  which they arrived cannot matter, and a rebuild from the topics arrives at the same figures.

Pure: no I/O here.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shared.contracts import topics
from shared.contracts.disbursement import (
    AwardAdjusted,
    DisbursementFailed,
    DisbursementSettled,
    FundsRefused,
    FundsReleased,
    FundsReserved,
    RefundRequested,
)
from shared.contracts.envelope import Envelope
from shared.contracts.intake import (
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWithdrawn,
)
from shared.contracts.money import Money
from shared.contracts.reporting import ReportSubmitted
from shared.contracts.review import ReportReviewed, ReviewCompleted
from shared.contracts.stages import NOT_OPEN_STAGES, Stage
from shared.contracts.topics import Topic
from shared.contracts.workflows import ApplicationStatusChanged, ReportOverdue, RequestReport

UNKNOWN = "unknown"

# Stage names of grants.application.status_changed.v1 that carry a decision or end the
# lifecycle. A status event whose amounts carry an award also counts as an award decision.
AWARDED_STAGES = frozenset({Stage.AWARDED.value})
DECLINED_STAGES = frozenset({Stage.DECLINED.value})
CLOSED_STAGES = frozenset(stage.value for stage in NOT_OPEN_STAGES)


# --- facts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """One thing that happened to an application, under its business key ``(kind, ref)``."""

    application_id: str
    kind: str
    ref: str
    occurred_at: datetime
    data: dict[str, Any]


def _money(value: Money | None) -> dict[str, Any] | None:
    return (
        None if value is None else {"amount_minor": value.amount_minor, "currency": value.currency}
    )


def _fact(envelope: Envelope[Any], kind: str, ref: str, **data: Any) -> Fact:
    return Fact(envelope.application_id, kind, ref, envelope.occurred_at, data)


def _submitted(envelope: Envelope[ApplicationSubmitted]) -> list[Fact]:
    payload = envelope.payload
    rules = payload.rules
    return [
        _fact(
            envelope,
            "submitted",
            "",
            member_id=payload.member_id,
            member_name=payload.member_name,
            program_code=payload.program_code,
            program_name=rules.name,
            cycle=payload.cycle,
            focus_area=payload.focus_area,
            partner_country=payload.partner.country,
            currency=rules.currency,
            requested=_money(payload.requested),
            budget=[
                {
                    "currency": line.amount.currency,
                    "amount_minor": line.amount.amount_minor,
                    "converted_currency": line.converted.currency,
                    "converted_minor": line.converted.amount_minor,
                }
                for line in payload.budget_lines
            ],
            tranches=[{"share_bp": t.share_bp, "due": t.due} for t in rules.tranches],
            exchange_end=payload.exchange_end.isoformat(),
            report_due_after_seconds=int(rules.report_due_after.total_seconds()),
        )
    ]


def _resubmitted(envelope: Envelope[ApplicationResubmitted]) -> list[Fact]:
    payload = envelope.payload
    return [
        _fact(
            envelope,
            "resubmitted",
            str(payload.revision),
            revision=payload.revision,
            requested=_money(payload.requested),
        )
    ]


def _withdrawn(envelope: Envelope[ApplicationWithdrawn]) -> list[Fact]:
    return [_fact(envelope, "withdrawn", "", member_id=envelope.payload.member_id)]


def _status(envelope: Envelope[ApplicationStatusChanged]) -> list[Fact]:
    payload = envelope.payload
    awarded = payload.amounts.awarded if payload.amounts else None
    return [
        _fact(
            envelope,
            "status",
            str(payload.sequence),
            sequence=payload.sequence,
            stage=payload.stage,
            program_code=payload.program_code,
            member_id=payload.member_id,
            awarded=_money(awarded),
        )
    ]


def _reserved(envelope: Envelope[FundsReserved]) -> list[Fact]:
    payload = envelope.payload
    return [_fact(envelope, "reserved", payload.command_id, amount=_money(payload.amount))]


def _refused(envelope: Envelope[FundsRefused]) -> list[Fact]:
    payload = envelope.payload
    return [_fact(envelope, "refused", payload.command_id, amount=_money(payload.amount))]


def _released(envelope: Envelope[FundsReleased]) -> list[Fact]:
    payload = envelope.payload
    return [_fact(envelope, "released", payload.command_id, amount=_money(payload.amount))]


def _award_adjusted(envelope: Envelope[AwardAdjusted]) -> list[Fact]:
    payload = envelope.payload
    return [
        _fact(envelope, "award_adjusted", payload.command_id, new_award=_money(payload.new_award))
    ]


def _settled(envelope: Envelope[DisbursementSettled]) -> list[Fact]:
    payload = envelope.payload
    # The instruction id is the idempotency key '<application>:<tranche>': one payment each.
    return [
        _fact(
            envelope,
            "settled",
            payload.instruction_id,
            tranche=payload.tranche,
            amount=_money(payload.amount),
        )
    ]


def _payment_failed(envelope: Envelope[DisbursementFailed]) -> list[Fact]:
    payload = envelope.payload
    return [
        _fact(
            envelope,
            "payment_failed",
            f"{payload.instruction_id}:{payload.attempts}",
            tranche=payload.tranche,
        )
    ]


def _refund(envelope: Envelope[RefundRequested]) -> list[Fact]:
    payload = envelope.payload
    return [_fact(envelope, "refund", payload.command_id, amount=_money(payload.amount))]


def _review(envelope: Envelope[ReviewCompleted]) -> list[Fact]:
    payload = envelope.payload
    return [
        _fact(
            envelope,
            "review",
            payload.task_id,
            round=payload.round,
            weighted_total_bp=payload.weighted_total_bp,
            recommendation=payload.recommendation,
        )
    ]


def _report_requested(envelope: Envelope[RequestReport]) -> list[Fact]:
    payload = envelope.payload
    # Keyed by due date too: a re-sent request is the same fact, an amended one is new.
    return [
        _fact(
            envelope,
            "report_requested",
            f"{payload.report_id}:{payload.due_on.isoformat()}",
            report_id=payload.report_id,
            due_on=payload.due_on.isoformat(),
            awarded=_money(payload.awarded),
            member_id=payload.member_id,
            program_code=payload.program_code,
        )
    ]


def _report_submitted(envelope: Envelope[ReportSubmitted]) -> list[Fact]:
    payload = envelope.payload
    content = payload.content
    figures: dict[str, int] = {}
    if content is not None:
        outcomes = content.outcomes
        figures = {
            "agreements_signed": outcomes.agreements_signed,
            "trade_leads": outcomes.trade_leads,
            "jobs_created": outcomes.jobs_created,
            "students_exchanged": outcomes.students_exchanged,
            "follow_up_projects": outcomes.follow_up_projects,
            "adults": content.participants.adults,
            "youth": content.participants.youth,
        }
    return [
        _fact(
            envelope,
            "report_submitted",
            f"{payload.report_id}:{payload.revision}",
            report_id=payload.report_id,
            revision=payload.revision,
            due_on=payload.due_on.isoformat() if payload.due_on else None,
            actual_spending=_money(payload.actual_spending),
            figures=figures,
        )
    ]


def _report_reviewed(envelope: Envelope[ReportReviewed]) -> list[Fact]:
    payload = envelope.payload
    # A report may be reviewed several times; nothing but the event itself tells them apart.
    return [
        _fact(
            envelope,
            "report_reviewed",
            str(envelope.event_id),
            report_id=payload.report_id,
            outcome=payload.outcome,
        )
    ]


def _report_overdue(envelope: Envelope[ReportOverdue]) -> list[Fact]:
    payload = envelope.payload
    return [
        _fact(
            envelope,
            "report_overdue",
            payload.report_id,
            due_on=payload.due_on.isoformat(),
        )
    ]


FACT_MAKERS: dict[str, Callable[[Envelope[Any]], list[Fact]]] = {
    topics.APPLICATION_SUBMITTED.name: _submitted,
    topics.APPLICATION_RESUBMITTED.name: _resubmitted,
    topics.APPLICATION_WITHDRAWN.name: _withdrawn,
    topics.APPLICATION_STATUS_CHANGED.name: _status,
    topics.FUNDS_RESERVED.name: _reserved,
    topics.FUNDS_REFUSED.name: _refused,
    topics.FUNDS_RELEASED.name: _released,
    topics.AWARD_ADJUSTED.name: _award_adjusted,
    topics.DISBURSEMENT_SETTLED.name: _settled,
    topics.DISBURSEMENT_FAILED.name: _payment_failed,
    topics.REFUND_REQUESTED.name: _refund,
    topics.REVIEW_COMPLETED.name: _review,
    topics.REQUEST_REPORT.name: _report_requested,
    topics.REPORT_SUBMITTED.name: _report_submitted,
    topics.REPORT_REVIEWED.name: _report_reviewed,
    topics.REPORT_OVERDUE.name: _report_overdue,
}

ANALYTICS_TOPICS: tuple[Topic, ...] = tuple(topics.TOPICS_BY_NAME[name] for name in FACT_MAKERS)


def facts_from_event(topic_name: str, envelope: Envelope[Any]) -> list[Fact]:
    """The facts an event adds; none for topics analytics does not read."""
    maker = FACT_MAKERS.get(topic_name)
    return maker(envelope) if maker else []


def fact_data_text(data: dict[str, Any]) -> str:
    """The stored form of a fact's data; ties between two versions of a fact compare this."""
    return json.dumps(data, sort_keys=True)


def merge_facts(facts: Iterable[Fact]) -> list[Fact]:
    """One fact per key: the earliest version, as the database keeps it (see persistence)."""
    kept: dict[tuple[str, str, str], Fact] = {}
    for fact in facts:
        key = (fact.application_id, fact.kind, fact.ref)
        known = kept.get(key)
        if known is None or (fact.occurred_at, fact_data_text(fact.data)) < (
            known.occurred_at,
            fact_data_text(known.data),
        ):
            kept[key] = fact
    return list(kept.values())


# --- one application's summary ---------------------------------------------------------


class Amounts(BaseModel):
    """Minor units per currency."""

    model_config = ConfigDict(extra="forbid")

    by_currency: dict[str, int] = {}

    def add(self, money: dict[str, Any] | None) -> None:
        if money is None:
            return
        currency = money["currency"]
        self.by_currency[currency] = self.by_currency.get(currency, 0) + money["amount_minor"]


class BudgetTotal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: str
    amount_minor: int
    converted_currency: str
    converted_minor: int


class TranchePlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int
    due: str
    due_on: date | None
    amount: Money
    paid: bool


class Payment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paid_on: date
    amount: Money


class ReportSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    report_id: str
    due_on: date | None = None
    first_submitted_at: datetime | None = None
    revision: int = 0
    actual_spending: Money | None = None
    figures: dict[str, int] = {}
    overdue: bool = False
    review: Literal["approved", "changes_requested"] | None = None
    approved_on: date | None = None

    @property
    def submitted(self) -> bool:
        return self.first_submitted_at is not None

    @property
    def late(self) -> bool | None:
        if self.first_submitted_at is None or self.due_on is None:
            return None
        return self.first_submitted_at.date() > self.due_on


class ApplicationSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    application_id: str
    program_code: str = UNKNOWN
    program_name: str = ""
    cycle: str = UNKNOWN
    focus_area: str = UNKNOWN
    partner_country: str = UNKNOWN
    member_id: str = UNKNOWN
    member_name: str = ""
    stage: str = UNKNOWN
    decision: Literal["awarded", "declined"] | None = None
    requested: Money | None = None
    awarded: Money | None = None
    reserved: Amounts = Amounts()
    released: Amounts = Amounts()
    paid: Amounts = Amounts()
    refunded: Amounts = Amounts()
    waitlisted: bool = False
    payment_failures: int = 0
    budget: list[BudgetTotal] = []
    submitted_at: datetime | None = None
    decided_at: datetime | None = None
    first_paid_at: datetime | None = None
    closed_at: datetime | None = None
    review_scores_bp: list[int] = []
    reports: list[ReportSummary] = []
    tranches: list[TranchePlan] = []
    payments: list[Payment] = []

    @property
    def closed(self) -> bool:
        return self.stage in CLOSED_STAGES


def _as_money(value: dict[str, Any] | None) -> Money | None:
    return None if value is None else Money.model_validate(value)


def _sorted(facts: Iterable[Fact], kind: str) -> list[Fact]:
    # A stable, total order so that ties cannot depend on arrival order.
    return sorted(
        (fact for fact in facts if fact.kind == kind), key=lambda f: (f.occurred_at, f.ref)
    )


def summarize(application_id: str, facts: Sequence[Fact]) -> ApplicationSummary:
    """Everything analytics knows about one application, from the set of its facts."""
    summary = ApplicationSummary(application_id=application_id)
    submitted = next(iter(_sorted(facts, "submitted")), None)
    statuses = sorted(
        (fact for fact in facts if fact.kind == "status"), key=lambda f: f.data["sequence"]
    )
    if submitted is not None:
        data = submitted.data
        summary.member_id = data["member_id"]
        summary.member_name = data["member_name"]
        summary.program_code = data["program_code"]
        summary.program_name = data["program_name"]
        summary.cycle = data["cycle"]
        summary.focus_area = data["focus_area"]
        summary.partner_country = data["partner_country"]
        summary.submitted_at = submitted.occurred_at
        summary.requested = _as_money(data["requested"])
        summary.budget = _budget_totals(data["budget"])
    elif statuses:
        summary.program_code = statuses[-1].data["program_code"]
        summary.member_id = statuses[-1].data["member_id"]
    elif requests := _sorted(facts, "report_requested"):
        summary.program_code = requests[-1].data["program_code"]
        summary.member_id = requests[-1].data["member_id"]
    resubmissions = sorted(
        (fact for fact in facts if fact.kind == "resubmitted"), key=lambda f: f.data["revision"]
    )
    if resubmissions:
        summary.requested = _as_money(resubmissions[-1].data["requested"])

    if statuses:
        summary.stage = statuses[-1].data["stage"]
    elif any(fact.kind == "withdrawn" for fact in facts):
        summary.stage = "withdrawn"
    elif submitted is not None:
        summary.stage = "submitted"
    _decide(summary, statuses, facts)

    for kind, amounts in (
        ("reserved", summary.reserved),
        ("released", summary.released),
        ("settled", summary.paid),
        ("refund", summary.refunded),
    ):
        for fact in _sorted(facts, kind):
            amounts.add(fact.data["amount"])
    settlements = _sorted(facts, "settled")
    summary.payments = [
        Payment(paid_on=fact.occurred_at.date(), amount=Money.model_validate(fact.data["amount"]))
        for fact in settlements
    ]
    summary.first_paid_at = settlements[0].occurred_at if settlements else None
    summary.waitlisted = bool(_sorted(facts, "refused")) and not _sorted(facts, "reserved")
    summary.payment_failures = len(_sorted(facts, "payment_failed"))
    closing = [fact.occurred_at for fact in statuses if fact.data["stage"] in CLOSED_STAGES]
    summary.closed_at = min(closing) if closing else None
    summary.review_scores_bp = [fact.data["weighted_total_bp"] for fact in _sorted(facts, "review")]
    summary.reports = _reports(facts)
    summary.tranches = _tranche_plan(summary, submitted, settlements)
    return summary


def _budget_totals(lines: list[dict[str, Any]]) -> list[BudgetTotal]:
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for line in lines:
        key = (line["currency"], line["converted_currency"])
        totals[key][0] += line["amount_minor"]
        totals[key][1] += line["converted_minor"]
    return [
        BudgetTotal(
            currency=currency,
            amount_minor=amount,
            converted_currency=converted_currency,
            converted_minor=converted,
        )
        for (currency, converted_currency), (amount, converted) in sorted(totals.items())
    ]


def _decide(summary: ApplicationSummary, statuses: list[Fact], facts: Sequence[Fact]) -> None:
    decided: list[datetime] = []
    award_candidates: list[tuple[datetime, int, Money]] = []
    for fact in statuses:
        stage = fact.data["stage"]
        awarded = _as_money(fact.data["awarded"])
        if stage in DECLINED_STAGES:
            summary.decision = "declined"
            decided.append(fact.occurred_at)
        elif stage in AWARDED_STAGES or awarded is not None:
            summary.decision = "awarded"
            decided.append(fact.occurred_at)
        if awarded is not None:
            award_candidates.append((fact.occurred_at, fact.data["sequence"], awarded))
    for fact in _sorted(facts, "award_adjusted"):
        award_candidates.append((fact.occurred_at, 0, Money.model_validate(fact.data["new_award"])))
    summary.decided_at = min(decided) if decided else None
    if summary.decision != "awarded":
        return
    if award_candidates:
        summary.awarded = max(award_candidates, key=lambda c: (c[0], c[1]))[2]
        return
    reservations = _sorted(facts, "reserved")
    if reservations:
        summary.awarded = Money.model_validate(reservations[0].data["amount"])


def _reports(facts: Sequence[Fact]) -> list[ReportSummary]:
    reports: dict[str, ReportSummary] = {}

    def report(report_id: str) -> ReportSummary:
        return reports.setdefault(report_id, ReportSummary(report_id=report_id))

    for fact in _sorted(facts, "report_overdue"):
        found = report(fact.ref)
        found.overdue = True
        found.due_on = found.due_on or date.fromisoformat(fact.data["due_on"])
    for fact in _sorted(facts, "report_requested"):
        # The latest request is authoritative: an amendment may have moved the due date.
        report(fact.data["report_id"]).due_on = date.fromisoformat(fact.data["due_on"])
    for fact in sorted(
        (f for f in facts if f.kind == "report_submitted"),
        key=lambda f: (f.data["revision"], f.occurred_at),
    ):
        found = report(fact.data["report_id"])
        if found.first_submitted_at is None or fact.occurred_at < found.first_submitted_at:
            found.first_submitted_at = fact.occurred_at
        found.revision = fact.data["revision"]
        found.actual_spending = _as_money(fact.data["actual_spending"])
        found.figures = dict(fact.data["figures"])
        if found.due_on is None and fact.data["due_on"]:
            found.due_on = date.fromisoformat(fact.data["due_on"])
    for fact in _sorted(facts, "report_reviewed"):
        found = report(fact.data["report_id"])
        found.review = fact.data["outcome"]
        if fact.data["outcome"] == "approved" and found.approved_on is None:
            found.approved_on = fact.occurred_at.date()
    return [reports[key] for key in sorted(reports)]


def _tranche_plan(
    summary: ApplicationSummary, submitted: Fact | None, settlements: list[Fact]
) -> list[TranchePlan]:
    if summary.decision != "awarded" or summary.awarded is None or submitted is None:
        return []
    schedule = submitted.data["tranches"]
    amounts = summary.awarded.split([tranche["share_bp"] for tranche in schedule])
    paid_tranches = {fact.data["tranche"] for fact in settlements}
    report = summary.reports[0] if summary.reports else None
    report_due = date.fromisoformat(submitted.data["exchange_end"]) + timedelta(
        seconds=submitted.data["report_due_after_seconds"]
    )
    plan = []
    for number, (tranche, amount) in enumerate(zip(schedule, amounts, strict=True), start=1):
        due_on: date | None
        if tranche["due"] == "after_award":
            due_on = summary.decided_at.date() if summary.decided_at else None
        elif report is not None and report.approved_on is not None:
            due_on = report.approved_on
        elif report is not None and report.due_on is not None:
            due_on = report.due_on
        else:
            due_on = report_due
        plan.append(
            TranchePlan(
                number=number,
                due=tranche["due"],
                due_on=due_on,
                amount=amount,
                paid=number in paid_tranches,
            )
        )
    return plan


# --- tables ------------------------------------------------------------------------------


class Dimension(StrEnum):
    ALL = "all"
    PROGRAM = "program"
    CYCLE = "cycle"
    FOCUS_AREA = "focus_area"
    PARTNER_COUNTRY = "partner_country"
    MEMBER = "member"


class TableName(StrEnum):
    APPLICATIONS = "applications"
    STATUSES = "statuses"
    MONEY = "money"
    BUDGET_CURRENCIES = "budget-currencies"
    CYCLE_TIMES = "cycle-times"
    REPORTS = "reports"
    OUTCOMES = "outcomes"
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
