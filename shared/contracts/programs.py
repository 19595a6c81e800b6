"""A funding program's rules, as snapshotted into every submitted application.

The workflow runs an application under the snapshot taken at submission, so changing the
catalog never changes an application in flight. Durations are ISO-8601 (``P30D``,
``PT45S``) so that a demo catalog can run a whole cycle in minutes.
"""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction
from typing import Literal

from pydantic import Field, model_validator

from shared.contracts.base import Contract
from shared.contracts.money import Money


class RubricCriterion(Contract):
    name: str = Field(examples=["relevance"])
    description: str = ""
    weight: int = Field(ge=1, description="Relative weight of the criterion.")
    min_score: int = 0
    max_score: int = Field(default=5, ge=1)


class Rubric(Contract):
    criteria: list[RubricCriterion] = Field(min_length=1)
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


class ProgramRules(Contract):
    code: str
    name: str
    catalog_version: str
    cycle: str = Field(description="Funding cycle, e.g. '2027'.")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    application_opens: date
    application_closes: date
    exchange_period_start: date
    exchange_period_end: date
    eligible_partner_countries: list[str] = Field(
        description="ISO-3166 alpha-2 codes; empty means any country."
    )
    applicant_countries: list[str] = Field(default_factory=list)
    focus_areas: list[Literal["business_and_trade", "youth_and_education", "community_development"]]
    youth_program: bool = False
    max_award: Money
    min_matching_bp: int = Field(ge=0, le=10_000)
    annual_budget: Money
    reviewers_needed: int = Field(ge=1)
    blind_review: bool = False
    rubric: Rubric
    report_rubric: Rubric
    tranches: list[Tranche] = Field(min_length=1)
    partner_confirmation_period: timedelta
    review_period: timedelta
    revision_period: timedelta
    payment_settlement_period: timedelta
    payment_max_attempts: int = Field(default=3, ge=1)
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
    report_reminders_before: list[timedelta] = Field(default_factory=list)
    report_reminders_after: list[timedelta] = Field(default_factory=list)
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
