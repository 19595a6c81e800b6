"""The intake rules: pure functions over drafts, members, exchange rates and program rules.

Nothing here touches the database, the broker or the clock: callers pass ``today`` and
the facts they loaded, so every rule can be tested on its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.contracts.intake import BudgetLine
from shared.contracts.money import MINOR_UNIT_EXPONENT, Money
from shared.contracts.programs import ProgramRules
from shared.contracts.stages import NOT_OPEN_STAGES, Stage

FocusArea = Literal["business_and_trade", "youth_and_education", "community_development"]
BudgetCategory = Literal[
    "travel",
    "accommodation",
    "meals",
    "local_transport",
    "venue",
    "interpretation",
    "materials",
    "insurance",
    "administration",
    "other",
]
FOCUS_AREA_WORDS: dict[str, str] = {
    "business_and_trade": "business and trade",
    "youth_and_education": "youth and education",
    "community_development": "community development",
}
YOUTH_PER_CHAPERONE = 5

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=254)]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10_000)]


class Input(BaseModel):
    """What a caller may send: unknown fields (``status``, ``award``, ``score``) are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(Input):
    name: ShortText
    email: Email
    role: Annotated[str, StringConstraints(max_length=100)] | None = None


class PartnerInput(Input):
    name: ShortText = Field(description="The partner sister city.")
    country: CountryCode = Field(description="ISO-3166 alpha-2 code of the partner's country.")
    contact_name: ShortText
    contact_email: Email


class Delegation(Input):
    adults: int = Field(ge=0, le=1000)
    youth: int = Field(default=0, ge=0, le=1000, description="Participants under 18.")


class BudgetLineInput(Input):
    category: BudgetCategory
    description: ShortText
    amount: Money = Field(description="In the currency it will be spent in.")


class ExpectedOutcomes(Input):
    agreements: int = Field(default=0, ge=0, le=10_000)
    trade_leads: int = Field(default=0, ge=0, le=10_000)
    students_exchanged: int = Field(default=0, ge=0, le=10_000)
    follow_up_projects: int = Field(default=0, ge=0, le=10_000)


# Passes every check with the seeded rate KES->USD 0.0077: 12,000 USD + 400,000 KES
# (3,080 USD) = 15,080 USD; matching 4,080 USD (27%); requested 11,000 USD.
DRAFT_EXAMPLE: dict[str, Any] = {
    "program_code": "AUPAP",
    "focus_area": "community_development",
    "title": "Clean water kiosks with Nairobi",
    "summary": "Denver and Nairobi water utilities exchange staff to plan three kiosks.",
    "partner": {
        "name": "Nairobi",
        "country": "KE",
        "contact_name": "Wanjiru Kamau",
        "contact_email": "partnerships@nairobi.example.org",
    },
    "exchange_start": "2027-05-10",
    "exchange_end": "2027-05-24",
    "delegation": {"adults": 6, "youth": 0},
    "budget_lines": [
        {
            "category": "travel",
            "description": "Flights DEN-NBO",
            "amount": {"amount_minor": 1_200_000, "currency": "USD"},
        },
        {
            "category": "accommodation",
            "description": "Guest house, 14 nights",
            "amount": {"amount_minor": 40_000_000, "currency": "KES"},
        },
    ],
    "requested": {"amount_minor": 1_100_000, "currency": "USD"},
    "matching_cash": {"amount_minor": 308_000, "currency": "USD"},
    "matching_in_kind": {"amount_minor": 100_000, "currency": "USD"},
    "objectives": "Plan three water kiosks and a maintenance cooperative.",
    "expected_outcomes": {"agreements": 1, "follow_up_projects": 2},
    "contacts": [{"name": "Ana Ruiz", "email": "ana.ruiz@denver.example.org"}],
}


class DraftFields(Input):
    """An application as the applicant writes it; a draft may leave anything out."""

    model_config = ConfigDict(json_schema_extra={"examples": [DRAFT_EXAMPLE]})

    program_code: Annotated[str, StringConstraints(max_length=40)] | None = None
    focus_area: FocusArea | None = None
    title: ShortText | None = None
    summary: LongText | None = None
    partner: PartnerInput | None = None
    exchange_start: date | None = None
    exchange_end: date | None = None
    delegation: Delegation | None = None
    budget_lines: list[BudgetLineInput] | None = Field(default=None, max_length=100)
    requested: Money | None = Field(default=None, description="In the program's currency.")
    matching_cash: Money | None = Field(default=None, description="In the program's currency.")
    matching_in_kind: Money | None = Field(default=None, description="In the program's currency.")
    objectives: LongText | None = None
    expected_outcomes: ExpectedOutcomes | None = None
    contacts: list[Contact] | None = Field(default=None, max_length=10)

    def merged(self, changes: DraftFields) -> DraftFields:
        """This draft with the fields ``changes`` sets (explicit nulls clear a field)."""
        values = self.model_dump()
        values.update(changes.model_dump(include=changes.model_fields_set))
        return DraftFields.model_validate(values)


# --- problems -------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One reason a request cannot be accepted: the field, and what is wrong in plain words."""

    field: str
    message: str


class IntakeError(Exception):
    """A request the intake service refuses; the API maps each kind to a status code."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(IntakeError):
    pass


class ConflictError(IntakeError):
    pass


class GoneError(IntakeError):
    pass


class ForbiddenError(IntakeError):
    """The caller may not do this whatever the object (e.g. an unregistered member)."""


class RuleViolationError(IntakeError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


# --- money ----------------------------------------------------------------------------

RATE_PATTERN = r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,12})?$"
Rates = Mapping[tuple[str, str], str]


def rate_fraction(rate: str) -> Fraction:
    """An exchange rate written as decimal text, exactly (never through a float)."""
    if not re.fullmatch(RATE_PATTERN, rate) or Fraction(rate) <= 0:
        raise ValueError(f"exchange rate {rate!r} must be a positive decimal number")
    return Fraction(rate)


def round_half_up(value: Fraction) -> int:
    """The nearest integer, halves away from zero (what an applicant expects of cents)."""
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def convert(amount: Money, to_currency: str, rate: str) -> Money:
    """``amount`` in ``to_currency`` at ``rate`` (units of ``to_currency`` per unit of its own).

    Minor units are converted exactly and rounded once, half up.
    """
    shift = MINOR_UNIT_EXPONENT[to_currency] - MINOR_UNIT_EXPONENT[amount.currency]
    exact = amount.amount_minor * rate_fraction(rate) * Fraction(10) ** shift
    return Money(amount_minor=round_half_up(exact), currency=to_currency)


def rate_for(rates: Rates, from_currency: str, to_currency: str) -> str | None:
    if from_currency == to_currency:
        return "1"
    return rates.get((from_currency, to_currency))


@dataclass(frozen=True)
class Pricing:
    """A budget in the program's currency, with the rates that were used."""

    lines: list[BudgetLine]
    total: Money
    matching: Money
    requested: Money
    rates_used: dict[str, str] = field(default_factory=dict)


def _words(money: Money) -> str:
    return str(money)


def check_money(
    *,
    budget_lines: list[BudgetLineInput],
    requested: Money,
    matching_cash: Money,
    matching_in_kind: Money,
    currency: str,
    max_award: Money,
    min_matching_bp: int,
    rates: Rates,
) -> tuple[list[Problem], Pricing | None]:
    """The money rules: conversion, request = total - matching, maximum, matching share."""
    problems: list[Problem] = []
    if not budget_lines:
        problems.append(Problem("budget_lines", "add at least one budget line"))
    lines: list[BudgetLine] = []
    rates_used: dict[str, str] = {}
    for index, line in enumerate(budget_lines):
        where = f"budget_lines[{index}].amount"
        if line.amount.amount_minor <= 0:
            problems.append(Problem(where, "a budget line must be more than zero"))
            continue
        rate = rate_for(rates, line.amount.currency, currency)
        if rate is None:
            problems.append(
                Problem(
                    where,
                    f"there is no exchange rate from {line.amount.currency} to {currency}; "
                    "ask a program officer to add one",
                )
            )
            continue
        rates_used[line.amount.currency] = rate
        lines.append(
            BudgetLine(
                category=line.category,
                description=line.description,
                amount=line.amount,
                converted=convert(line.amount, currency, rate),
                fx_rate=rate,
            )
        )
    for name, money in (
        ("requested", requested),
        ("matching_cash", matching_cash),
        ("matching_in_kind", matching_in_kind),
    ):
        if money.currency != currency:
            problems.append(
                Problem(name, f"must be in the program's currency {currency}, not {money.currency}")
            )
    for name, money in (("matching_cash", matching_cash), ("matching_in_kind", matching_in_kind)):
        if money.amount_minor < 0:
            problems.append(Problem(name, "matching funds cannot be negative"))
    if problems:
        return problems, None

    total = Money(
        amount_minor=sum(line.converted.amount_minor for line in lines), currency=currency
    )
    matching = matching_cash + matching_in_kind
    expected = total - matching
    if requested.amount_minor <= 0:
        problems.append(Problem("requested", "the requested amount must be more than zero"))
    elif requested != expected:
        problems.append(
            Problem(
                "requested",
                f"the requested amount ({_words(requested)}) must equal the budget total "
                f"({_words(total)}) minus matching funds ({_words(matching)}), "
                f"which is {_words(expected)}",
            )
        )
    if requested > max_award:
        problems.append(
            Problem(
                "requested",
                f"the requested amount ({_words(requested)}) is more than the program's "
                f"maximum award of {_words(max_award)}",
            )
        )
    if matching.amount_minor * 10_000 < min_matching_bp * total.amount_minor:
        share = Fraction(matching.amount_minor, total.amount_minor) if total.amount_minor else 0
        problems.append(
            Problem(
                "matching_cash",
                f"matching funds (cash and in kind, {_words(matching)}) are "
                f"{_percent(Fraction(share) * 10_000)} of the budget total {_words(total)}; "
                f"the program requires at least {_percent(Fraction(min_matching_bp))}",
            )
        )
    pricing = Pricing(
        lines=lines, total=total, matching=matching, requested=requested, rates_used=rates_used
    )
    return problems, pricing


def _percent(basis_points: Fraction) -> str:
    return f"{math.floor(basis_points) / 100:g}%"


# --- the submission rules -------------------------------------------------------------


@dataclass(frozen=True)
class MemberFacts:
    member_id: str
    name: str
    country: str
    membership_active: bool
    good_standing: bool
    standing_reason: str | None = None


REQUIRED_FIELDS: tuple[tuple[str, str], ...] = (
    ("program_code", "choose a program"),
    ("focus_area", "choose a focus area"),
    ("title", "a title is required"),
    ("summary", "a summary is required"),
    ("partner", "name the partner sister city, its country and its contact"),
    ("exchange_start", "the exchange start date is required"),
    ("exchange_end", "the exchange end date is required"),
    ("delegation", "say how many adults and youth travel"),
    ("budget_lines", "add at least one budget line"),
    ("requested", "the requested amount is required"),
    ("matching_cash", "matching funds in cash are required (0 if none)"),
    ("matching_in_kind", "matching funds in kind are required (0 if none)"),
    ("objectives", "describe the objectives"),
    ("contacts", "add at least one contact who receives notifications"),
)


def window_is_open(rules: ProgramRules, today: date) -> bool:
    return rules.application_opens <= today <= rules.application_closes


def check_window(rules: ProgramRules, today: date) -> list[Problem]:
    if today < rules.application_opens:
        return [
            Problem(
                "program_code",
                f"applications for {rules.code} open on {rules.application_opens.isoformat()}",
            )
        ]
    if today > rules.application_closes:
        return [
            Problem(
                "program_code",
                f"applications for {rules.code} closed on {rules.application_closes.isoformat()}",
            )
        ]
    return []


def check_partner_country(rules: ProgramRules, country: str) -> list[Problem]:
    eligible = rules.eligible_partner_countries
    if eligible and country not in eligible:
        return [
            Problem(
                "partner.country",
                f"partners in {country} are not eligible for {rules.code}; "
                f"eligible countries: {', '.join(eligible)}",
            )
        ]
    return []


def check_applicant_country(rules: ProgramRules, member: MemberFacts) -> list[Problem]:
    allowed = rules.applicant_countries
    if allowed and member.country not in allowed:
        return [
            Problem(
                "program_code",
                f"{rules.code} is open to member cities in {', '.join(allowed)} only, "
                f"and {member.name} is in {member.country}",
            )
        ]
    return []


def check_focus_area(rules: ProgramRules, focus_area: str) -> list[Problem]:
    if focus_area not in rules.focus_areas:
        allowed = " and ".join(FOCUS_AREA_WORDS[area] for area in rules.focus_areas)
        return [
            Problem(
                "focus_area",
                f"{rules.code} funds {allowed}, not {FOCUS_AREA_WORDS.get(focus_area, focus_area)}",
            )
        ]
    return []


def check_dates(
    rules: ProgramRules, start: date, end: date, today: date, lead_days: int
) -> list[Problem]:
    problems: list[Problem] = []
    earliest = date.fromordinal(today.toordinal() + lead_days)
    if start < earliest:
        when = "today or later" if lead_days == 0 else f"after today ({today.isoformat()})"
        problems.append(Problem("exchange_start", f"the exchange must start {when}"))
    if end <= start:
        problems.append(Problem("exchange_end", "the exchange must end after it starts"))
    period = f"{rules.exchange_period_start.isoformat()} to {rules.exchange_period_end.isoformat()}"
    if start < rules.exchange_period_start or start > rules.exchange_period_end:
        problems.append(
            Problem(
                "exchange_start",
                f"the exchange must start within the program's exchange period {period}",
            )
        )
    if end > rules.exchange_period_end or end < rules.exchange_period_start:
        problems.append(
            Problem(
                "exchange_end",
                f"the exchange must end within the program's exchange period {period}",
            )
        )
    return problems


def chaperones_needed(youth: int) -> int:
    return math.ceil(youth / YOUTH_PER_CHAPERONE)


def check_delegation(rules: ProgramRules, delegation: Delegation) -> list[Problem]:
    problems: list[Problem] = []
    if delegation.adults + delegation.youth == 0:
        problems.append(Problem("delegation", "the delegation needs at least one participant"))
    if rules.youth_program and delegation.youth == 0:
        problems.append(
            Problem(
                "delegation.youth", f"{rules.code} is a youth program: include youth (under 18)"
            )
        )
    needed = chaperones_needed(delegation.youth)
    if delegation.adults < needed:
        problems.append(
            Problem(
                "delegation.adults",
                f"{delegation.youth} youth need at least {needed} adult chaperone"
                f"{'s' if needed != 1 else ''} (one per {YOUTH_PER_CHAPERONE} youth)",
            )
        )
    return problems


def check_member(member: MemberFacts) -> list[Problem]:
    problems: list[Problem] = []
    if not member.membership_active:
        problems.append(
            Problem("member", f"{member.name}'s membership is not active; renew it to apply")
        )
    if not member.good_standing:
        why = {
            "report_overdue": "a report from an earlier grant is overdue",
            "membership_lapsed": "the membership lapsed",
        }.get(member.standing_reason or "", "a program officer marked it so")
        problems.append(Problem("member", f"{member.name} is not in good standing: {why}"))
    return problems


@dataclass(frozen=True)
class Checked:
    problems: list[Problem]
    pricing: Pricing | None
    rules: ProgramRules | None

    @property
    def ready(self) -> bool:
        return not self.problems and self.pricing is not None


def check_submission(
    draft: DraftFields,
    *,
    member: MemberFacts,
    rules: ProgramRules | None,
    rates: Rates,
    today: date,
    exchange_lead_days: int,
) -> Checked:
    """Every submission rule; the result lists all problems at once."""
    problems = [
        Problem(name, message) for name, message in REQUIRED_FIELDS if not getattr(draft, name)
    ]
    if draft.program_code and rules is None:
        problems.append(Problem("program_code", f"there is no program {draft.program_code!r}"))
    problems += check_member(member)
    if rules is None:
        return Checked(problems, None, None)
    problems += check_window(rules, today)
    problems += check_applicant_country(rules, member)
    if draft.partner:
        problems += check_partner_country(rules, draft.partner.country)
    if draft.focus_area:
        problems += check_focus_area(rules, draft.focus_area)
    if draft.exchange_start and draft.exchange_end:
        problems += check_dates(
            rules, draft.exchange_start, draft.exchange_end, today, exchange_lead_days
        )
    if draft.delegation:
        problems += check_delegation(rules, draft.delegation)
    pricing = None
    if draft.budget_lines and draft.requested and draft.matching_cash and draft.matching_in_kind:
        money_problems, pricing = check_money(
            budget_lines=draft.budget_lines,
            requested=draft.requested,
            matching_cash=draft.matching_cash,
            matching_in_kind=draft.matching_in_kind,
            currency=rules.currency,
            max_award=rules.max_award,
            min_matching_bp=rules.min_matching_bp,
            rates=rates,
        )
        problems += money_problems
    return Checked(_unique(problems), pricing, rules)


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def draft_currencies(draft: DraftFields) -> set[str]:
    return {line.amount.currency for line in draft.budget_lines or ()}


# --- amendments -----------------------------------------------------------------------


def check_amendment(
    *,
    rules: ProgramRules,
    current_start: date,
    current_end: date,
    new_start: date | None,
    new_end: date | None,
    new_award: Money | None,
    cancel_exchange: bool,
) -> list[Problem]:
    if not cancel_exchange and new_start is None and new_end is None and new_award is None:
        return [
            Problem(
                "amendment",
                "ask for a new start or end date, a new award, or to cancel the exchange",
            )
        ]
    problems: list[Problem] = []
    start = new_start or current_start
    end = new_end or current_end
    if new_start or new_end:
        if end <= start:
            problems.append(Problem("new_exchange_end", "the exchange must end after it starts"))
        if start < rules.exchange_period_start or end > rules.exchange_period_end:
            problems.append(
                Problem(
                    "new_exchange_start" if new_start else "new_exchange_end",
                    "the exchange must stay within the program's exchange period "
                    f"{rules.exchange_period_start.isoformat()} to "
                    f"{rules.exchange_period_end.isoformat()}",
                )
            )
    if new_award is not None:
        if new_award.currency != rules.currency:
            problems.append(
                Problem("new_award", f"must be in the program's currency {rules.currency}")
            )
        elif new_award.amount_minor <= 0:
            problems.append(Problem("new_award", "the new award must be more than zero"))
        elif new_award > rules.max_award:
            problems.append(
                Problem(
                    "new_award",
                    f"the new award is more than the program's maximum of {rules.max_award}",
                )
            )
    return problems


# --- lifecycle stages as published by the workflow ------------------------------------

DRAFT = "draft"
SUBMITTED = "submitted"
WITHDRAWN = "withdrawn"
# Stages after which an application no longer counts as open for its program cycle.
TERMINAL_STAGES = frozenset(stage.value for stage in NOT_OPEN_STAGES)
REVISION_STAGES = frozenset({Stage.REVISION_REQUESTED.value})
AWARD_STAGES = frozenset({Stage.AWARDED.value})


def is_open(status: str) -> bool:
    return status != DRAFT and status not in TERMINAL_STAGES


def open_key(member_id: str, program_code: str, cycle: str) -> str:
    """Unique among open applications: one per member, program and cycle."""
    return f"{member_id}|{program_code}|{cycle}"


def stage_words(stage: str) -> str:
    return stage.replace("_", " ")


# --- the partner's one-time link ------------------------------------------------------


def _link_signature(secret: str, link_id: str, expires: int) -> str:
    digest = hmac.new(
        secret.encode(), f"partner-confirmation:{link_id}:{expires}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_partner_link(secret: str, link_id: str, expires_at: datetime) -> str:
    """``<link id>.<expiry>.<HMAC-SHA256>``: only intake can make one, nobody can alter one."""
    expires = int(expires_at.timestamp())
    return f"{link_id}.{expires}.{_link_signature(secret, link_id, expires)}"


@dataclass(frozen=True)
class PartnerLinkToken:
    link_id: str
    expires: int


def read_partner_link(secret: str, token: str) -> PartnerLinkToken | None:
    """The link id of a genuine token, or None (forged, altered or malformed)."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or not re.fullmatch(r"[0-9a-f]{32}", parts[0]):
        return None
    link_id, expires_text, signature = parts
    expected = _link_signature(secret, link_id, int(expires_text))
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return None
    return PartnerLinkToken(link_id=link_id, expires=int(expires_text))
