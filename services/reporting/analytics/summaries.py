"""The figures of one application, from the set of its facts.

``summarize`` is a pure function of the facts (not of the order they arrived in), so the
live read model and a rebuild from the topics agree. Money follows what actually
happened: payments come from disbursement's settlements, the award from the decision and
its amendments, and what is still to be paid from the program's tranche plan as the
amendments rescheduled it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from services.reporting.analytics.facts import Fact
from shared.contracts.intake import PlannedOutcomes
from shared.contracts.money import Money
from shared.contracts.programs import ProgramRules, Tranche, rescheduled_tranches
from shared.contracts.stages import NOT_OPEN_STAGES, Stage

UNKNOWN = "unknown"

# Stage names of grants.application.status_changed.v1 that carry a decision or end the
# lifecycle. A status event whose amounts carry an award also counts as an award decision.
AWARDED_STAGES = frozenset({Stage.AWARDED.value})
DECLINED_STAGES = frozenset({Stage.DECLINED.value})
CLOSED_STAGES = frozenset(stage.value for stage in NOT_OPEN_STAGES)

# The outcomes an application plans; the report answers each under the same name.
PLANNED_OUTCOMES: tuple[str, ...] = tuple(PlannedOutcomes.model_fields)


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
    """One tranche: what was paid, or what is still to be paid and when."""

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
    refunded: Amounts = Amounts()  # refunds requested (asked back of the member)
    refund_received: Amounts = Amounts()  # what finance received of them
    waitlisted: bool = False
    payment_failures: int = 0
    budget: list[BudgetTotal] = []
    submitted_at: datetime | None = None
    decided_at: datetime | None = None
    first_paid_at: datetime | None = None
    closed_at: datetime | None = None
    review_scores_bp: list[int] = []
    # None: submitted before expected outcomes travelled with the submission (or unseen).
    planned_outcomes: dict[str, int] | None = None
    reports: list[ReportSummary] = []
    tranches: list[TranchePlan] = []
    payments: list[Payment] = []

    @property
    def closed(self) -> bool:
        return self.stage in CLOSED_STAGES

    @property
    def reported_outcomes(self) -> dict[str, int] | None:
        """The planned outcomes as the reports give them (each report as last revised).

        None until a report with its content is in: no report yet is not zero achieved.
        """
        reported = [report.figures for report in self.reports if report.figures]
        if not reported:
            return None
        return {
            name: sum(figures.get(name, 0) for figures in reported) for name in PLANNED_OUTCOMES
        }


@dataclass(frozen=True)
class AwardChange:
    """The award as of a moment: the decision, an amendment, or (failing both) a reservation."""

    at: datetime
    order: int
    award: Money


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
    _describe(summary, submitted, statuses, facts)
    if statuses:
        summary.stage = statuses[-1].data["stage"]
    elif any(fact.kind == "withdrawn" for fact in facts):
        summary.stage = "withdrawn"
    elif submitted is not None:
        summary.stage = "submitted"
    _decide(summary, statuses)
    awards = award_changes(statuses, facts) if summary.decision == "awarded" else []
    summary.awarded = awards[-1].award if awards else None

    for kind, amounts in (
        ("reserved", summary.reserved),
        ("released", summary.released),
        ("settled", summary.paid),
        ("refund", summary.refunded),
        ("refund_received", summary.refund_received),
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
    if submitted is not None and awards:
        summary.tranches = tranche_plan(summary, submitted, awards, settlements)
    return summary


def _describe(
    summary: ApplicationSummary,
    submitted: Fact | None,
    statuses: list[Fact],
    facts: Sequence[Fact],
) -> None:
    """Who applied, to what, for how much: from the submission, else what other facts say."""
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
        # Facts stored before the plan was kept have no "planned" at all.
        planned = data.get("planned")
        if planned is not None:
            summary.planned_outcomes = {name: planned.get(name, 0) for name in PLANNED_OUTCOMES}
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


def _decide(summary: ApplicationSummary, statuses: list[Fact]) -> None:
    decided: list[datetime] = []
    for fact in statuses:
        stage = fact.data["stage"]
        if stage in DECLINED_STAGES:
            summary.decision = "declined"
            decided.append(fact.occurred_at)
        elif stage in AWARDED_STAGES or fact.data["awarded"] is not None:
            summary.decision = "awarded"
            decided.append(fact.occurred_at)
    summary.decided_at = min(decided) if decided else None


def award_changes(statuses: list[Fact], facts: Sequence[Fact]) -> list[AwardChange]:
    """The award over time: as decided, then as each amendment changed it."""
    changes = [
        AwardChange(fact.occurred_at, fact.data["sequence"], Money.model_validate(awarded))
        for fact in statuses
        if (awarded := fact.data["awarded"]) is not None
    ]
    changes += [
        AwardChange(fact.occurred_at, 0, Money.model_validate(fact.data["new_award"]))
        for fact in _sorted(facts, "award_adjusted")
    ]
    if not changes:
        changes = [
            AwardChange(fact.occurred_at, 0, Money.model_validate(fact.data["amount"]))
            for fact in _sorted(facts, "reserved")[:1]
        ]
    return sorted(changes, key=lambda change: (change.at, change.order))


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


def rules_of(submitted: Fact) -> ProgramRules:
    """The program rules the application was submitted under."""
    data = submitted.data
    if "rules" in data:
        return ProgramRules.model_validate(data["rules"])
    # Facts recorded before the snapshot was kept carry the tranche schedule and the
    # report's due period, which is all that analytics asks of the rules.
    return ProgramRules.model_construct(  # type: ignore[call-arg]
        tranches=[Tranche.model_validate(tranche) for tranche in data["tranches"]],
        report_due_after=timedelta(seconds=data["report_due_after_seconds"]),
    )


def tranche_amounts(
    rules: ProgramRules, awards: Sequence[AwardChange], settlements: Sequence[Fact]
) -> list[Money]:
    """Each tranche's amount: paid as settled, the rest as the plan stands after amendments.

    The plan is the program's (``ProgramRules.tranche_plan``) for the award as decided. A
    changed award spreads what is left of it over the tranches not paid at that moment,
    by their shares, as the workflow does.
    """
    award = awards[0].award
    amounts = rules.tranche_plan(award)
    paid: dict[int, Money] = {}
    moments: list[tuple[datetime, int, Fact | AwardChange]] = [
        (fact.occurred_at, 0, fact) for fact in settlements
    ]
    moments += [(change.at, 1, change) for change in awards[1:]]
    for _at, _order, happened in sorted(moments, key=lambda moment: (moment[0], moment[1])):
        if isinstance(happened, Fact):
            number = happened.data["tranche"]
            amount = Money.model_validate(happened.data["amount"])
            if 1 <= number <= len(amounts) and amount.currency == award.currency:
                paid[number] = amounts[number - 1] = amount
        elif happened.award != award and happened.award.currency == award.currency:
            already_paid = sum(paid.values(), Money.zero(award.currency))
            amounts = rescheduled_tranches(amounts, set(paid), happened.award, already_paid)
            award = happened.award
    return amounts


def tranche_plan(
    summary: ApplicationSummary,
    submitted: Fact,
    awards: Sequence[AwardChange],
    settlements: Sequence[Fact],
) -> list[TranchePlan]:
    rules = rules_of(submitted)
    amounts = tranche_amounts(rules, awards, settlements)
    paid = {fact.data["tranche"] for fact in settlements}
    report = summary.reports[0] if summary.reports else None
    report_due = date.fromisoformat(submitted.data["exchange_end"]) + rules.report_due_after
    plan = []
    for number, (tranche, amount) in enumerate(zip(rules.tranches, amounts, strict=True), start=1):
        due_on: date | None
        if tranche.due == "after_award":
            due_on = summary.decided_at.date() if summary.decided_at else None
        elif report is not None and report.approved_on is not None:
            due_on = report.approved_on
        elif report is not None and report.due_on is not None:
            due_on = report.due_on
        else:
            due_on = report_due
        plan.append(
            TranchePlan(
                number=number, due=tranche.due, due_on=due_on, amount=amount, paid=number in paid
            )
        )
    return plan
