"""The intake rules: pure functions over drafts, members, exchange rates and program rules.

Intake keeps only its own rules here: what a draft must say before it is submitted, the
application window, the lead time before an exchange, member standing, chaperones, and
the budget's conversion and arithmetic (request = total - matching). The program's
eligibility rules (partner and applicant countries, focus area, exchange period, youth,
currency, maximum award, matching share) are ``ProgramRules.eligibility_problems``, the
one rule the workflow screens with too.

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
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from shared.contracts.base import EMAIL_PATTERN, HAS_TEXT, IsoDate, WholeNumber, stripped
from shared.contracts.intake import BudgetLine, PlannedOutcomes
from shared.contracts.money import Money
from shared.contracts.programs import ExchangePlan, ProgramRules
from shared.contracts.stages import NOT_OPEN_STAGES, Stage
from shared.errors import Problem

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
YOUTH_PER_CHAPERONE = 5
# As many as the submission carries (``ApplicationSubmitted.other_partners``).
MAX_OTHER_PARTNERS = 9

Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=254)]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
# Some text besides spaces: the schema says so too (the pattern), so that a text it allows is
# never refused for being empty once stripped. Lengths are of the text as sent (the schema's),
# and stripping comes after.
ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=HAS_TEXT), AfterValidator(stripped)
]
LongText = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(stripped)]


class Input(BaseModel):
    """What a caller may send: unknown fields (``status``, ``award``, ``score``) are an error,
    and so is a value of another JSON type than the schema's (lax mode would read ``false``
    as 0 and ``0`` as a date)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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
    adults: WholeNumber = Field(ge=0, le=1000)
    youth: WholeNumber = Field(default=0, ge=0, le=1000, description="Participants under 18.")


class BudgetLineInput(Input):
    category: BudgetCategory
    description: ShortText
    amount: Money = Field(description="In the currency it will be spent in.")


class ExpectedOutcomes(Input):
    agreements: WholeNumber = Field(default=0, ge=0, le=10_000)
    trade_leads: WholeNumber = Field(default=0, ge=0, le=10_000)
    students_exchanged: WholeNumber = Field(default=0, ge=0, le=10_000)
    follow_up_projects: WholeNumber = Field(default=0, ge=0, le=10_000)

    def planned(self) -> PlannedOutcomes:
        """As the submission carries them, named as the report will answer them."""
        return PlannedOutcomes(
            agreements_signed=self.agreements,
            trade_leads=self.trade_leads,
            students_exchanged=self.students_exchanged,
            follow_up_projects=self.follow_up_projects,
        )


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
    partner: PartnerInput | None = Field(default=None, description="The first partner city.")
    other_partners: list[PartnerInput] | None = Field(
        default=None,
        max_length=MAX_OTHER_PARTNERS,
        description="Partner cities beyond the first, for an exchange among several sister "
        "cities (a tri-lateral exchange); each confirms through its own link.",
    )
    exchange_start: IsoDate | None = None
    exchange_end: IsoDate | None = None
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

    def every_partner(self) -> list[PartnerInput]:
        """The partners named so far, the first first."""
        return [*([self.partner] if self.partner else []), *(self.other_partners or ())]


# --- problems -------------------------------------------------------------------------


def rule(field: str, message: str) -> Problem:
    """A rule the request breaks: the field at fault, and what is wrong in plain words."""
    return Problem(field, message, "rule")


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


# --- money ----------------------------------------------------------------------------

Rates = Mapping[tuple[str, str], str]


def rate_for(rates: Rates, from_currency: str, to_currency: str) -> str | None:
    if from_currency == to_currency:
        return "1"
    return rates.get((from_currency, to_currency))


@dataclass(frozen=True)
class Pricing:
    """A budget converted into the program's currency, the rates used, and what is asked."""

    lines: list[BudgetLine]
    total: Money
    matching: Money
    requested: Money
    rates_used: dict[str, str] = field(default_factory=dict)

    @property
    def expected_request(self) -> Money | None:
        """The budget total minus matching funds; None while these are in another currency."""
        if self.matching.currency != self.total.currency:
            return None
        return self.total - self.matching


@dataclass(frozen=True)
class MoneyCheck:
    problems: list[Problem]
    pricing: Pricing | None = None


def check_money(draft: DraftFields, currency: str, rates: Rates) -> MoneyCheck:
    """Intake's money rules: every budget line converts into the program's currency, the
    matching funds are not negative, and the request is the budget total minus them.

    Matching funds in kind are added to those in cash: the program's rules judge the sum,
    so intake names an in-kind amount in another currency itself. The pricing is there
    once the budget converts, for the program's rules to judge (currency, maximum award,
    matching share).
    """
    if not (draft.requested and draft.matching_cash and draft.matching_in_kind):
        return MoneyCheck([])
    cash, in_kind, requested = draft.matching_cash, draft.matching_in_kind, draft.requested
    problems: list[Problem] = []
    if not draft.budget_lines:
        problems.append(rule("budget_lines", "add at least one budget line"))
    lines: list[BudgetLine] = []
    rates_used: dict[str, str] = {}
    for index, line in enumerate(draft.budget_lines or ()):
        where = f"budget_lines[{index}].amount"
        if line.amount.amount_minor <= 0:
            problems.append(rule(where, "a budget line must be more than zero"))
            continue
        rate = rate_for(rates, line.amount.currency, currency)
        if rate is None:
            problems.append(
                rule(
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
                converted=line.amount.converted(currency, rate),
                fx_rate=rate,
            )
        )
    for name, money in (("matching_cash", cash), ("matching_in_kind", in_kind)):
        if money.amount_minor < 0:
            problems.append(rule(name, "matching funds cannot be negative"))
    if in_kind.currency != currency:
        problems.append(
            rule(
                "matching_in_kind",
                f"must be in the program's currency {currency}, not {in_kind.currency}",
            )
        )
    if problems:
        return MoneyCheck(problems)
    total = Money(
        amount_minor=sum(line.converted.amount_minor for line in lines), currency=currency
    )
    # Cash in another currency than the program's cannot take the in-kind amount (which
    # is in the program's by now): the rules judge the cash alone and name its currency.
    matching = cash + in_kind if cash.currency == in_kind.currency else cash
    pricing = Pricing(lines, total, matching, requested, rates_used)
    expected = pricing.expected_request
    if (
        expected is not None
        and requested.currency == expected.currency
        and requested.amount_minor > 0
        and requested != expected
    ):
        problems.append(
            rule(
                "requested",
                f"the requested amount ({requested}) must equal the budget total ({total}) "
                f"minus matching funds ({matching}), which is {expected}",
            )
        )
    return MoneyCheck(problems, pricing)


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


def missing_fields(draft: DraftFields) -> list[Problem]:
    return [rule(name, message) for name, message in REQUIRED_FIELDS if not getattr(draft, name)]


def window_is_open(rules: ProgramRules, today: date) -> bool:
    return rules.application_opens <= today <= rules.application_closes


def check_window(rules: ProgramRules, today: date) -> list[Problem]:
    if today < rules.application_opens:
        return [
            rule(
                "program_code",
                f"applications for {rules.code} open on {rules.application_opens.isoformat()}",
            )
        ]
    if today > rules.application_closes:
        return [
            rule(
                "program_code",
                f"applications for {rules.code} closed on {rules.application_closes.isoformat()}",
            )
        ]
    return []


def check_lead_time(start: date, today: date, lead_days: int) -> list[Problem]:
    if start < date.fromordinal(today.toordinal() + lead_days):
        when = "today or later" if lead_days == 0 else f"after today ({today.isoformat()})"
        return [rule("exchange_start", f"the exchange must start {when}")]
    return []


def chaperones_needed(youth: int) -> int:
    return math.ceil(youth / YOUTH_PER_CHAPERONE)


def check_delegation(delegation: Delegation) -> list[Problem]:
    problems: list[Problem] = []
    if delegation.adults + delegation.youth == 0:
        problems.append(rule("delegation", "the delegation needs at least one participant"))
    needed = chaperones_needed(delegation.youth)
    if delegation.adults < needed:
        problems.append(
            rule(
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
            rule("member", f"{member.name}'s membership is not active; renew it to apply")
        )
    if not member.good_standing:
        why = {
            "report_overdue": "a report from an earlier grant is overdue",
            "membership_lapsed": "the membership lapsed",
        }.get(member.standing_reason or "", "a program officer marked it so")
        problems.append(rule("member", f"{member.name} is not in good standing: {why}"))
    return problems


def check_program_rules(
    rules: ProgramRules, draft: DraftFields, member_country: str, pricing: Pricing | None
) -> list[Problem]:
    """The program's eligibility rules on what the draft says so far.

    ``ProgramRules.eligibility_problems`` judges a whole exchange plan, and a draft may
    leave parts out: a rule about a part that is missing waits until it is there (the
    missing field is named already), and the rest are judged at once.
    """
    waiting: set[str] = set()
    if draft.focus_area is None:
        waiting.add("focus_area")
    if draft.exchange_start is None or draft.exchange_end is None:
        waiting |= {"exchange_start", "exchange_end"}
    if draft.delegation is None:
        waiting.add("delegation.youth")
    if pricing is None:
        waiting |= {"requested", "matching_cash", "budget_lines"}
    if draft.partner is None:
        # The missing first partner is named already; which others the program requires
        # is said once there is one.
        waiting.add("partners")
    nothing = Money.zero(rules.currency)
    plan = ExchangePlan(
        member_country=member_country,
        partner_countries=[partner.country for partner in draft.every_partner()],
        focus_area=draft.focus_area or "",
        exchange_start=draft.exchange_start or rules.exchange_period_start,
        exchange_end=draft.exchange_end or rules.exchange_period_end,
        youth=draft.delegation.youth if draft.delegation else 0,
        budget_total=pricing.total if pricing else nothing,
        matching=pricing.matching if pricing else nothing,
        requested=pricing.requested if pricing else nothing,
    )
    return [
        rule(_draft_field(problem.field, first=draft.partner is not None), problem.message)
        for problem in rules.eligibility_problems(plan)
        if problem.field not in waiting
    ]


def _draft_field(field: str, *, first: bool) -> str:
    """The draft's name for a partner field the program rules name: they number the plan's
    partners (``partner.country`` for the first, then ``partners[1].country``...), the draft
    keeps the first apart (``other_partners[0].country`` is the plan's second)."""
    match = re.fullmatch(r"partner(\..*)|partners\[(\d+)\](.*)", field)
    if match is None:
        return field
    index, rest = (0, match.group(1)) if match.group(1) else (int(match.group(2)), match.group(3))
    if first and index == 0:
        return f"partner{rest}"
    return f"other_partners[{index - 1 if first else index}]{rest}"


def check_partners(draft: DraftFields) -> list[Problem]:
    """Each partner city confirms through a link mailed to its own contact, so no two
    partners may share one (the answer names the partner by its contact's e-mail)."""
    problems: list[Problem] = []
    seen = {draft.partner.contact_email.lower()} if draft.partner else set()
    for index, partner in enumerate(draft.other_partners or ()):
        email = partner.contact_email.lower()
        if email in seen:
            problems.append(
                rule(
                    f"other_partners[{index}].contact_email",
                    "each partner city needs its own contact e-mail: this one is given "
                    "for another partner already",
                )
            )
        seen.add(email)
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
    problems = missing_fields(draft)
    if draft.program_code and rules is None:
        problems.append(rule("program_code", f"there is no program {draft.program_code!r}"))
    problems += check_member(member)
    if rules is None:
        return Checked(problems, None, None)
    problems += check_window(rules, today)
    money = check_money(draft, rules.currency, rates)
    problems += check_program_rules(rules, draft, member.country, money.pricing)
    if draft.exchange_start:
        problems += check_lead_time(draft.exchange_start, today, exchange_lead_days)
    if draft.delegation:
        problems += check_delegation(draft.delegation)
    problems += check_partners(draft)
    problems += money.problems
    return Checked(_unique(problems), money.pricing, rules)


def check_resubmission(
    draft: DraftFields, *, rules: ProgramRules, member_country: str, rates: Rates
) -> Checked:
    """A revised draft under the rules of its snapshot (its window and lead time are past)."""
    money = check_money(draft, rules.currency, rates)
    problems = [
        *missing_fields(draft),
        *check_program_rules(rules, draft, member_country, money.pricing),
        *check_partners(draft),
        *money.problems,
    ]
    return Checked(_unique(problems), money.pricing, rules)


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
            rule(
                "amendment",
                "ask for a new start or end date, a new award, or to cancel the exchange",
            )
        ]
    problems: list[Problem] = []
    start = new_start or current_start
    end = new_end or current_end
    if new_start or new_end:
        if end <= start:
            problems.append(rule("new_exchange_end", "the exchange must end after it starts"))
        if start < rules.exchange_period_start or end > rules.exchange_period_end:
            problems.append(
                rule(
                    "new_exchange_start" if new_start else "new_exchange_end",
                    "the exchange must stay within the program's exchange period "
                    f"{rules.exchange_period_start.isoformat()} to "
                    f"{rules.exchange_period_end.isoformat()}",
                )
            )
    if new_award is not None:
        if new_award.currency != rules.currency:
            problems.append(
                rule("new_award", f"must be in the program's currency {rules.currency}")
            )
        elif new_award.amount_minor <= 0:
            problems.append(rule("new_award", "the new award must be more than zero"))
        elif new_award > rules.max_award:
            problems.append(
                rule(
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
# The final payment is being made or was made: the award can no longer change.
PAID_OUT_STAGES = frozenset({Stage.FINAL_PAYMENT.value, Stage.CLOSING.value})


def open_key(member_id: str, program_code: str, cycle: str) -> str:
    """Unique among open applications: one per member, program and cycle."""
    return f"{member_id}|{program_code}|{cycle}"


def stage_words(stage: str) -> str:
    return stage.replace("_", " ")


# --- the partner's one-time link ------------------------------------------------------


def partner_confirmation_subject(application_id: str, partner_email: str | None = None) -> str:
    """What a partner's answer is filed under: every request about one partner's
    confirmation gets it again (``shared.messaging.receipts``).

    Without ``partner_email``: the subject every request had when an application had one
    partner, which the receipts and links recorded then still carry. The e-mail is hashed
    to fit a subject's 200 characters.
    """
    if partner_email is None:
        return f"partner-confirmation:{application_id}"
    digest = hashlib.sha256(partner_email.lower().encode()).hexdigest()[:20]
    return f"partner-confirmation:{application_id}:{digest}"


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
