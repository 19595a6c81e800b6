"""The lifecycle's rules: pure functions over the rules snapshot, no I/O, no clock.

The workflow calls these with values it holds, so they are deterministic by construction
and can be tested without Temporal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from shared.contracts.intake import ApplicationSubmitted, BudgetLine
from shared.contracts.money import Money
from shared.contracts.programs import ExchangePlan, ProgramRules, Rubric
from shared.contracts.review import ReviewCompleted

Outcome = Literal["awarded", "declined", "revision_requested"]

# A score this close below the pass mark (in basis points) earns a revision, not a decline.
REVISION_BAND_BP = 1_000
# Revision rounds an application may go through before a failing score is final.
MAX_REVISIONS = 2
# A deadline that passes this many times in a review round is escalated to an officer.
REVIEW_TIMEOUTS_BEFORE_ESCALATION = 3
# Sends of one command without an answer before an officer is told.
SENDS_BEFORE_ESCALATION = 5
# Sends of a command a person answers (partner, reviewers, member) against a lost message;
# after these the stage's deadline (escalation, reassignment, reminders) takes over.
SENDS_TO_PEOPLE = 3
# Re-sends back off: each wait doubles, up to this multiple of the first one.
RESEND_BACKOFF_CAP = 128


def budget_total(lines: list[BudgetLine], currency: str) -> Money:
    """What the exchange costs in the program currency: its budget lines, as converted."""
    total = Money.zero(currency)
    for line in lines:
        if line.converted.currency != currency:
            return line.converted  # the rules name the currency that is wrong
        total = total + line.converted
    return total


def exchange_plan(application: ApplicationSubmitted) -> ExchangePlan:
    """What the program rules judge of a submitted application."""
    return ExchangePlan(
        member_country=application.member_country,
        partner_countries=[partner.country for partner in application.every_partner()],
        focus_area=application.focus_area,
        exchange_start=application.exchange_start,
        exchange_end=application.exchange_end,
        youth=application.youth,
        budget_total=budget_total(application.budget_lines, application.rules.currency),
        matching=_matching(application),
        requested=application.requested,
    )


def _matching(application: ApplicationSubmitted) -> Money:
    cash, in_kind = application.matching_cash, application.matching_in_kind
    if cash.currency != in_kind.currency:
        # Not addable: the rules name the one that is not in the program currency.
        return cash if cash.currency != application.rules.currency else in_kind
    return cash + in_kind


def screening_problems(application: ApplicationSubmitted) -> list[str]:
    """Why the application is ineligible; empty when eligible.

    The program's rules are the program's (``ProgramRules.eligibility_problems``, the same
    answer intake gave before submission); the member's standing at submission is the
    lifecycle's own check.
    """
    problems: list[str] = []
    if not application.member_in_good_standing:
        problems.append(f"{application.member_name} is not in good standing (a report is overdue)")
    rules = application.rules
    problems += [
        problem.message for problem in rules.eligibility_problems(exchange_plan(application))
    ]
    return problems


def review_score_bp(rubric: Rubric, review: ReviewCompleted) -> int:
    """The review's weighted total under the snapshot rubric (the reviewer's own as fallback)."""
    scores = {score.criterion: score.score for score in review.scores}
    if all(criterion.name in scores for criterion in rubric.criteria):
        return rubric.weighted_total_bp(scores)
    return review.weighted_total_bp


def wide_spread(rules: ProgramRules, reviews: list[ReviewCompleted]) -> str | None:
    """Why the reviewers disagree too much for their average to decide; None when they agree."""
    totals = sorted(review_score_bp(rules.rubric, review) for review in reviews)
    if len(totals) < 2 or totals[-1] - totals[0] <= rules.score_spread_threshold_bp:
        return None
    listed = ", ".join(f"{total} bp" for total in totals)
    return (
        f"the reviewers' weighted totals ({listed}) lie {totals[-1] - totals[0]} bp apart, "
        f"more than the program's {rules.score_spread_threshold_bp} bp"
    )


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    score_bp: int | None
    award: Money | None
    reason: str


def award_for(requested: Money, rules: ProgramRules) -> Money:
    """The award: what was asked for, capped at the program's maximum."""
    return requested if requested <= rules.max_award else rules.max_award


def decide(
    rules: ProgramRules,
    reviews: list[ReviewCompleted],
    *,
    requested: Money,
    revisions_so_far: int,
) -> Decision:
    """Weighted score against the pass mark; a near miss earns a revision while any are left."""
    scores = [review_score_bp(rules.rubric, review) for review in reviews]
    score = sum(scores) // len(scores)
    pass_mark = rules.rubric.pass_mark_bp
    if score >= pass_mark:
        award = award_for(requested, rules)
        note = "" if award == requested else f"; capped at the program maximum {award}"
        return Decision("awarded", score, award, f"score {score} bp >= pass mark {pass_mark}{note}")
    revise_votes = sum(1 for review in reviews if review.recommendation == "revise")
    near_miss = score >= pass_mark - REVISION_BAND_BP or revise_votes * 2 > len(reviews)
    if near_miss and revisions_so_far < MAX_REVISIONS:
        return Decision(
            "revision_requested",
            score,
            None,
            f"score {score} bp is below the pass mark {pass_mark}; revision invited",
        )
    return Decision("declined", score, None, f"score {score} bp is below the pass mark {pass_mark}")


@dataclass(frozen=True)
class CloseOut:
    """What close-out moves: final tranches as reduced by an underspend, release, refund."""

    final_tranches: dict[int, Money]
    release: Money
    refund: Money


def close_out(
    *,
    award: Money,
    paid: Money,
    refunded: Money,
    final_tranches: dict[int, Money],
    actual_spending: Money | None,
) -> CloseOut:
    """Pay only what the exchange actually needed.

    Unspent money first comes off the final tranches (released from the reservation); if
    the advance alone exceeded the spending, the member refunds the difference.
    """
    currency = award.currency
    zero = Money.zero(currency)
    if actual_spending is None or actual_spending.currency != currency:
        return CloseOut(dict(final_tranches), zero, zero)
    net_paid = paid - refunded
    planned_final = sum((amount for amount in final_tranches.values()), zero)
    unspent = award - actual_spending
    if unspent.amount_minor <= 0:
        return CloseOut(dict(final_tranches), zero, zero)
    cut = unspent if unspent <= planned_final else planned_final
    remaining_cut = cut
    reduced: dict[int, Money] = {}
    for index in sorted(final_tranches, reverse=True):
        amount = final_tranches[index]
        take = remaining_cut if remaining_cut <= amount else amount
        reduced[index] = amount - take
        remaining_cut = remaining_cut - take
    refund = net_paid - actual_spending
    if refund.amount_minor < 0:
        refund = zero
    return CloseOut(dict(sorted(reduced.items())), cut, refund)


def end_of_day(day: date) -> datetime:
    """The instant a date is over (UTC): the exchange ends when its last day does."""
    return datetime.combine(day, time.min, tzinfo=UTC) + timedelta(days=1)


def resend_interval(first: timedelta, sends: int) -> timedelta:
    """The wait before the next re-send after ``sends`` sends: doubling, capped."""
    factor: int = min(1 << max(sends - 1, 0), RESEND_BACKOFF_CAP)
    return first * factor
