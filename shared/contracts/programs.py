"""A funding program's rules, as snapshotted into every submitted application.

The workflow runs an application under the snapshot taken at submission, so changing the
catalog never changes an application in flight. Durations are ISO-8601 (``P30D``,
``PT45S``) so that a demo catalog can run a whole cycle in minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from typing import Annotated, Literal

from pydantic import Field, model_validator

from shared.contracts.base import Contract, CountryCode, Cycle, Description, ProgramCode, Title
from shared.contracts.money import Money

FOCUS_AREA_WORDS = {
    "business_and_trade": "business and trade",
    "youth_and_education": "youth and education",
    "community_development": "community development",
}


@dataclass(frozen=True)
class RuleProblem:
    """One program rule an application breaks, and the application field it is about."""

    field: str
    message: str


@dataclass(frozen=True)
class ExchangePlan:
    """What the program rules judge of an application (intake's draft, the submission)."""

    member_country: str
    partner_countries: list[str]
    focus_area: str
    exchange_start: date
    exchange_end: date
    youth: int
    budget_total: Money
    matching: Money
    requested: Money


def _percent(basis_points: Fraction) -> str:
    return f"{math.floor(basis_points) / 100:g}%"


# Reviewers a quarter of the scale apart do not agree on what they read.
DEFAULT_SCORE_SPREAD_BP = 2500

CriterionName = Annotated[str, Field(min_length=1, max_length=100, examples=["relevance"])]
Score = Annotated[int, Field(ge=-1000, le=1000)]


class RubricCriterion(Contract):
    name: CriterionName
    description: Description = ""
    weight: int = Field(ge=1, le=1000, description="Relative weight of the criterion.")
    min_score: Score = 0
    max_score: Score = Field(default=5, ge=1)


class Rubric(Contract):
    criteria: list[RubricCriterion] = Field(min_length=1, max_length=50)
    pass_mark_bp: int = Field(
        ge=0, le=10_000, description="Weighted score needed to pass, in basis points (6000=60%)."
    )

    def weighted_total_bp(self, scores: dict[str, int]) -> int:
        """Weighted share of the maximum, in basis points, rounded down."""
        total_weight = sum(criterion.weight for criterion in self.criteria)
        share = sum(
            Fraction(
                criterion.weight * (scores[criterion.name] - criterion.min_score),
                criterion.max_score - criterion.min_score,
            )
            for criterion in self.criteria
        )
        return int(share * 10_000 / total_weight)


class Tranche(Contract):
    share_bp: int = Field(gt=0, le=10_000, description="Share of the award in basis points.")
    due: Literal["after_award", "after_report_approved"]


class PartnerRequirement(Contract):
    """At least one partner city must come from ``countries``."""

    countries: list[CountryCode] = Field(min_length=1, max_length=300)
    name: Annotated[str, Field(max_length=100)] = Field(
        default="",
        description="How screening names the group ('an African country'); the country "
        "codes when empty.",
    )

    def describe(self) -> str:
        if self.name:
            return self.name
        if len(self.countries) == 1:
            return self.countries[0]
        return "one of " + ", ".join(self.countries)


class ProgramRules(Contract):
    code: ProgramCode
    name: Title
    catalog_version: Annotated[str, Field(min_length=1, max_length=40)]
    cycle: Cycle = Field(description="Funding cycle, e.g. '2027'.")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    application_opens: date
    application_closes: date
    exchange_period_start: date
    exchange_period_end: date
    eligible_partner_countries: list[CountryCode] = Field(
        max_length=300, description="ISO-3166 alpha-2 codes; empty means any country."
    )
    applicant_countries: list[CountryCode] = Field(default_factory=list, max_length=300)
    required_partners: list[PartnerRequirement] = Field(
        default_factory=list,
        max_length=10,
        description="Partners the program requires, each from its group of countries (the "
        "Tri-lateral program: one in CA and one in MX); empty: one partner or more.",
    )
    focus_areas: list[
        Literal["business_and_trade", "youth_and_education", "community_development"]
    ] = Field(max_length=3)
    youth_program: bool = False
    max_award: Money
    min_matching_bp: int = Field(ge=0, le=10_000)
    annual_budget: Money
    reviewers_needed: int = Field(ge=1, le=100)
    blind_review: bool = False
    rubric: Rubric
    report_rubric: Rubric
    tranches: list[Tranche] = Field(min_length=1, max_length=20)
    partner_confirmation_period: timedelta
    review_period: timedelta
    revision_period: timedelta
    payment_settlement_period: timedelta
    payment_max_attempts: int = Field(
        default=3,
        ge=1,
        le=1000,
        description=(
            "Kept for lifecycles started before disbursement became the one owner of "
            "payment retries (GRANTFLOW_DISBURSEMENT_MAX_PAYMENT_ATTEMPTS); ignored since."
        ),
    )
    score_spread_threshold_bp: int = Field(
        default=DEFAULT_SCORE_SPREAD_BP,
        ge=0,
        le=10_000,
        description=(
            "When the reviewers' weighted totals lie further apart than this, a program "
            "officer decides (award, decline or another reviewer) instead of the average."
        ),
    )
    command_resend_after: timedelta = Field(
        default=timedelta(hours=1),
        description="A command without an answer by then is sent again with the same id.",
    )
    demo_exchange_ends_after: timedelta | None = Field(
        default=None,
        description=(
            "Demo catalogs only: the exchange is taken to end this long after the advance "
            "is paid, whatever its dates, so that a whole cycle runs in minutes."
        ),
    )
    report_due_after: timedelta = Field(description="Report due this long after the exchange.")
    report_reminders_before: list[timedelta] = Field(default_factory=list, max_length=20)
    report_reminders_after: list[timedelta] = Field(default_factory=list, max_length=20)
    report_overdue_after: timedelta = Field(
        default=timedelta(0), description="Grace after the due date before standing is lost."
    )
    report_review_period: timedelta
    report_changes_period: timedelta

    @model_validator(mode="after")
    def _tranches_add_up(self) -> ProgramRules:
        if sum(tranche.share_bp for tranche in self.tranches) != 10_000:
            raise ValueError("tranche shares must add up to 10000 basis points (100%)")
        return self

    # The program's rules, owned here and nowhere else ---------------------------------

    def eligibility_problems(self, plan: ExchangePlan) -> list[RuleProblem]:
        """Why ``plan`` is not eligible under these rules; empty when it is.

        Intake checks a draft with it before submission, and the workflow screens the
        submitted snapshot with it: one rule, one answer. The matching share is of the
        exchange's whole budget (matching plus requested).
        """
        problems: list[RuleProblem] = []
        eligible = self.eligible_partner_countries
        for index, country in enumerate(plan.partner_countries):
            if eligible and country not in eligible:
                where = "partner.country" if index == 0 else f"partners[{index}].country"
                problems.append(
                    RuleProblem(
                        where,
                        f"partners in {country} are not eligible for {self.code}; "
                        f"eligible countries: {', '.join(eligible)}",
                    )
                )
        for requirement in self.required_partners:
            if not set(requirement.countries) & set(plan.partner_countries):
                problems.append(
                    RuleProblem("partners", f"a partner in {requirement.describe()} is required")
                )
        allowed = self.applicant_countries
        if allowed and plan.member_country not in allowed:
            problems.append(
                RuleProblem(
                    "program_code",
                    f"{self.code} is open to member cities in {', '.join(allowed)} only, "
                    f"not {plan.member_country}",
                )
            )
        if plan.focus_area not in self.focus_areas:
            funded = " and ".join(FOCUS_AREA_WORDS[area] for area in self.focus_areas)
            area = FOCUS_AREA_WORDS.get(plan.focus_area, plan.focus_area)
            problems.append(RuleProblem("focus_area", f"{self.code} funds {funded}, not {area}"))
        problems += self._date_problems(plan.exchange_start, plan.exchange_end)
        if self.youth_program and plan.youth == 0:
            problems.append(
                RuleProblem(
                    "delegation.youth", f"{self.code} is a youth program: include youth (under 18)"
                )
            )
        problems += self._money_problems(plan)
        return problems

    def _date_problems(self, start: date, end: date) -> list[RuleProblem]:
        problems: list[RuleProblem] = []
        if end <= start:
            problems.append(RuleProblem("exchange_end", "the exchange must end after it starts"))
        period = (
            f"{self.exchange_period_start.isoformat()} to {self.exchange_period_end.isoformat()}"
        )
        if not self.exchange_period_start <= start <= self.exchange_period_end:
            problems.append(
                RuleProblem(
                    "exchange_start",
                    f"the exchange must start within the program's exchange period {period}",
                )
            )
        if not self.exchange_period_start <= end <= self.exchange_period_end:
            problems.append(
                RuleProblem(
                    "exchange_end",
                    f"the exchange must end within the program's exchange period {period}",
                )
            )
        return problems

    def _money_problems(self, plan: ExchangePlan) -> list[RuleProblem]:
        problems: list[RuleProblem] = []
        for name, money in (
            ("requested", plan.requested),
            ("matching_cash", plan.matching),
            ("budget_lines", plan.budget_total),
        ):
            if money.currency != self.currency:
                problems.append(
                    RuleProblem(
                        name,
                        f"must be in the program's currency {self.currency}, not {money.currency}",
                    )
                )
        if problems:
            return problems
        if plan.requested.amount_minor <= 0:
            problems.append(RuleProblem("requested", "the requested amount must be more than zero"))
        if plan.requested > self.max_award:
            problems.append(
                RuleProblem(
                    "requested",
                    f"the requested amount ({plan.requested}) is more than the program's "
                    f"maximum award of {self.max_award}",
                )
            )
        total = plan.budget_total
        if plan.matching.amount_minor * 10_000 < self.min_matching_bp * total.amount_minor:
            share = (
                Fraction(plan.matching.amount_minor, total.amount_minor)
                if total.amount_minor
                else 0
            )
            problems.append(
                RuleProblem(
                    "matching_cash",
                    f"matching funds (cash and in kind, {plan.matching}) are "
                    f"{_percent(Fraction(share) * 10_000)} of the budget total {total}; "
                    f"the program requires at least {_percent(Fraction(self.min_matching_bp))}",
                )
            )
        return problems

    def tranche_plan(self, award: Money) -> list[Money]:
        """Each tranche's amount for ``award``; the parts add up to the award exactly."""
        return award.split([tranche.share_bp for tranche in self.tranches])


def rescheduled_tranches(
    planned: list[Money], paid_tranches: set[int], new_award: Money, already_paid: Money
) -> list[Money]:
    """Spread what is left of a changed award over the tranches not paid yet, by their shares.

    Paid tranches keep their amounts; when the new award is below what was paid, the
    unpaid tranches become zero (the excess is refunded separately). The workflow pays by
    it and reporting projects cash flow by it.
    """
    unpaid = [number for number in range(1, len(planned) + 1) if number not in paid_tranches]
    remaining = new_award - already_paid
    result = list(planned)
    if not unpaid:
        return result
    if remaining.amount_minor <= 0:
        for number in unpaid:
            result[number - 1] = Money.zero(new_award.currency)
        return result
    weights = [max(planned[number - 1].amount_minor, 1) for number in unpaid]
    shares = [weight * 10_000 // sum(weights) for weight in weights]
    shares[-1] = 10_000 - sum(shares[:-1])
    for number, part in zip(unpaid, remaining.split(shares), strict=True):
        result[number - 1] = part
    return result
