"""Post-exchange reports: what a draft may hold, what a submission needs, who may change it.

Pure rules, no I/O: the use cases in ``service.py`` load an obligation, ask these functions,
and store the answer. A broken rule raises the shared vocabulary: ``UnmetRulesError`` naming
each field at fault (409: the rules read the stored grant and draft, which no schema knows),
``ConflictError`` when the report's state forbids the action (409).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from fractions import Fraction
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.base import Category, Description
from shared.contracts.intake import BudgetLine
from shared.contracts.money import MINOR_UNIT_EXPONENT, Money, Payment, parse_rate
from shared.contracts.reporting import (
    AttachmentMeta,
    ReportActivity,
    ReportContent,
    ReportOutcomes,
    ReportParticipants,
    SpendingLine,
)
from shared.errors import ConflictError, Problem, UnmetRulesError

REPORT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


def report_subject(report_id: str) -> str:
    """What every answer about one report is filed under (``shared.messaging.receipts``)."""
    return f"report:{report_id}"


class ReportState(StrEnum):
    REQUESTED = "requested"
    DRAFT = "draft"
    SUBMITTED = "submitted"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"


EDITABLE_STATES = frozenset(
    {ReportState.REQUESTED, ReportState.DRAFT, ReportState.CHANGES_REQUESTED}
)


class SpendingInput(BaseModel):
    """One line of actual spending as the applicant enters it: what was spent, in the
    currency it was spent in. Reporting converts it; a converted amount is not taken."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: Category = Field(description="A budget line's category.")
    description: Description = ""
    amount: Payment = Field(description="What was spent, in the currency it was spent in.")


class SpendingEntry(SpendingInput):
    """A line of spending as stored and shown: with its amount in the award currency."""

    converted: Money | None = Field(
        default=None,
        description="In the award currency, converted by reporting at the rate recorded "
        "with the budget (read only).",
    )

    @classmethod
    def of(cls, line: SpendingLine) -> Self:
        """The entry of a resolved line, its conversion kept."""
        return cls(
            category=line.category,
            description=line.description,
            amount=line.amount,
            converted=line.converted,
        )


class ActivityInput(BaseModel):
    """An activity as a draft holds it: the fields of ``ReportActivity``, whose rule that it
    ends no earlier than it starts is checked on submission (a schema cannot compare two
    fields, so a draft that breaks it is stored and named by the submission's checks). A
    ``ReportActivity`` is taken as it is."""

    model_config = ConfigDict(extra="forbid", frozen=True, from_attributes=True)

    title: str = Field(min_length=1, max_length=200)
    held_on: date
    ends_on: date | None = Field(default=None, description="Last day, for a multi-day activity.")
    description: str = Field(default="", max_length=4000)


class _DraftParts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    participants: ReportParticipants | None = None
    activities: list[ActivityInput] = Field(default_factory=list, max_length=200)
    outcomes: ReportOutcomes | None = None
    attachments: list[AttachmentMeta] = Field(default_factory=list, max_length=50)
    lessons_learned: str = Field(default="", max_length=20_000)


class ReportDraft(_DraftParts):
    """A report being written: any part may still be missing; what is there must be valid."""

    spending: list[SpendingEntry] = Field(default_factory=list, max_length=200)

    @classmethod
    def of(cls, content: ReportContent) -> Self:
        """A complete report as the draft it is submitted from."""
        return cls(
            participants=content.participants,
            activities=[ActivityInput.model_validate(a) for a in content.activities],
            outcomes=content.outcomes,
            spending=[SpendingEntry.of(line) for line in content.spending],
            attachments=content.attachments,
            lessons_learned=content.lessons_learned,
        )


class ReportDraftIn(_DraftParts):
    """What the applicant sends: the draft without converted amounts (an applicant who
    could set them could shrink its spending in the award currency and avoid a refund)."""

    spending: list[SpendingInput] = Field(default_factory=list, max_length=200)

    def draft(self) -> ReportDraft:
        return ReportDraft.model_validate(self.model_dump())


@dataclass(frozen=True)
class Obligation:
    report_id: str
    application_id: str
    member_id: str
    state: ReportState
    due_on: date | None
    budget_lines: list[BudgetLine] = field(default_factory=list)
    awarded: Money | None = None
    requested: bool = True  # False while only an overdue notice has been seen

    @property
    def categories(self) -> list[str]:
        return sorted({line.category for line in self.budget_lines})


def ensure_editable(obligation: Obligation) -> None:
    if obligation.state is ReportState.APPROVED:
        raise ConflictError("the report is already approved and can no longer change")
    if obligation.state is ReportState.SUBMITTED:
        raise ConflictError("the report is under review; wait for the outcome")
    if not obligation.requested or obligation.awarded is None:
        raise ConflictError("the report obligation is not open yet; try again shortly")


def conversion_rates(budget_lines: list[BudgetLine], award_currency: str) -> dict[str, Fraction]:
    """Units of the award currency per unit of each budget currency (``Money.converted``).

    The rate is the one recorded with the budget at submission: the lines' ``fx_rate``, or
    for lines recorded without one, their converted total over their total.
    """
    spent: dict[str, int] = {}
    converted: dict[str, int] = {}
    recorded: dict[str, Fraction] = {}
    for line in budget_lines:
        if line.converted.currency != award_currency:
            continue
        if line.fx_rate is not None:
            recorded.setdefault(line.amount.currency, parse_rate(line.fx_rate))
        if line.amount.amount_minor <= 0:
            continue
        spent[line.amount.currency] = spent.get(line.amount.currency, 0) + line.amount.amount_minor
        converted[line.amount.currency] = (
            converted.get(line.amount.currency, 0) + line.converted.amount_minor
        )
    target = MINOR_UNIT_EXPONENT[award_currency]
    rates = {
        currency: Fraction(converted[currency], spent[currency])
        * Fraction(10) ** (MINOR_UNIT_EXPONENT[currency] - target)
        for currency in spent
    }
    rates.update(recorded)
    rates[award_currency] = Fraction(1)
    return rates


def resolve_spending(
    draft: ReportDraft, obligation: Obligation
) -> tuple[list[SpendingLine], list[Problem]]:
    """Spending lines with their award-currency amounts, and what is wrong with them."""
    assert obligation.awarded is not None
    award_currency = obligation.awarded.currency
    rates = conversion_rates(obligation.budget_lines, award_currency)
    categories = set(obligation.categories)
    lines: list[SpendingLine] = []
    errors: list[Problem] = []
    for index, entry in enumerate(draft.spending):
        at = f"spending[{index}]"
        if entry.category not in categories:
            errors.append(
                Problem(
                    f"{at}.category",
                    f"{entry.category!r} is not a budget line of this grant; "
                    f"use one of: {', '.join(obligation.categories) or 'none'}",
                )
            )
        rate = rates.get(entry.amount.currency)
        if rate is None:
            errors.append(
                Problem(
                    f"{at}.amount.currency",
                    f"no rate was recorded for {entry.amount.currency} with the budget: "
                    f"report the spending in {award_currency} or in a currency of the budget",
                )
            )
            continue
        converted = entry.amount.converted(award_currency, rate)
        lines.append(
            SpendingLine(
                category=entry.category,
                description=entry.description,
                amount=entry.amount,
                converted=converted,
            )
        )
    return lines, errors


def checked_draft(draft: ReportDraft, obligation: Obligation) -> ReportDraft:
    """The draft to store, with spending converted; raises UnmetRulesError."""
    ensure_editable(obligation)
    lines, errors = resolve_spending(draft, obligation)
    if errors:
        raise UnmetRulesError(errors)
    return draft.model_copy(update={"spending": [SpendingEntry.of(line) for line in lines]})


def complete_report(draft: ReportDraft, obligation: Obligation, today: date) -> ReportContent:
    """The report as it will be submitted; raises UnmetRulesError naming every gap."""
    ensure_editable(obligation)
    errors: list[Problem] = []
    if draft.participants is None:
        errors.append(Problem("participants", "required to submit"))
    elif draft.participants.adults + draft.participants.youth == 0:
        errors.append(Problem("participants", "at least one participant took part"))
    if not draft.activities:
        errors.append(Problem("activities", "list at least one activity held"))
    for index, activity in enumerate(draft.activities):
        if activity.held_on > today:
            errors.append(
                Problem(f"activities[{index}].held_on", "is in the future: report what was held")
            )
        if activity.ends_on is not None and activity.ends_on < activity.held_on:
            errors.append(Problem(f"activities[{index}].ends_on", "must not be before held_on"))
    if draft.outcomes is None:
        errors.append(Problem("outcomes", "required to submit"))
    if not draft.spending:
        errors.append(Problem("spending", "report the actual spending per budget line"))
    if not draft.lessons_learned.strip():
        errors.append(Problem("lessons_learned", "required to submit"))
    lines, spending_errors = resolve_spending(draft, obligation)
    errors += spending_errors
    if errors:
        raise UnmetRulesError(errors)
    assert draft.participants is not None and draft.outcomes is not None
    return ReportContent(
        participants=draft.participants,
        activities=[ReportActivity.model_validate(a.model_dump()) for a in draft.activities],
        outcomes=draft.outcomes,
        spending=lines,
        attachments=draft.attachments,
        lessons_learned=draft.lessons_learned,
    )


def total_spending(content: ReportContent, currency: str) -> Money:
    total = Money.zero(currency)
    for line in content.spending:
        total = total + line.converted
    return total


def is_late(due_on: date | None, submitted_on: date) -> bool:
    return due_on is not None and submitted_on > due_on


def overdue_costs_standing(state: ReportState) -> bool:
    """An overdue notice costs the member its standing unless the report already arrived."""
    return state in EDITABLE_STATES
