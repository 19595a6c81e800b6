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

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from services.intake.domain.drafts import Delegation, DraftFields
from shared.contracts.intake import BudgetLine
from shared.contracts.money import Money
from shared.contracts.programs import ExchangePlan, ProgramRules
from shared.contracts.stages import NOT_OPEN_STAGES, Stage
from shared.errors import Problem

YOUTH_PER_CHAPERONE = 5


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
