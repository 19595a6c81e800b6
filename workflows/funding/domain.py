"""The lifecycle's rules: pure functions over the rules snapshot, no I/O, no clock.

The workflow calls these with values it holds, so they are deterministic by construction
and can be tested without Temporal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from shared.contracts.intake import ApplicationSubmitted
from shared.contracts.money import Money
from shared.contracts.programs import ProgramRules, Rubric
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


def screen(application: ApplicationSubmitted) -> list[str]:
    """Why the application is ineligible under its rules snapshot; empty when eligible."""
    rules = application.rules
    problems: list[str] = []
    if not application.member_in_good_standing:
        problems.append(f"{application.member_name} is not in good standing (a report is overdue)")
    countries = rules.eligible_partner_countries
    if countries and application.partner.country not in countries:
        problems.append(
            f"partner country {application.partner.country} is not eligible "
            f"(eligible: {', '.join(countries)})"
        )
    if rules.applicant_countries and application.member_country not in rules.applicant_countries:
        problems.append(f"applicant country {application.member_country} is not eligible")
    if application.focus_area not in rules.focus_areas:
        problems.append(f"focus area {application.focus_area} is not funded by {rules.code}")
    if application.exchange_end < application.exchange_start:
        problems.append("the exchange ends before it starts")
    if not (
        rules.exchange_period_start
        <= application.exchange_start
        <= application.exchange_end
        <= rules.exchange_period_end
    ):
        problems.append(
            f"the exchange must take place between {rules.exchange_period_start} "
            f"and {rules.exchange_period_end}"
        )
    if application.requested.currency != rules.currency:
        problems.append(f"the request must be in {rules.currency}")
        return problems
    if application.requested.amount_minor <= 0:
        problems.append("the requested amount must be positive")
    matching_currencies = {
        application.matching_cash.currency,
        application.matching_in_kind.currency,
    }
    if matching_currencies != {rules.currency}:
        problems.append(f"matching funds must be stated in {rules.currency}")
    else:
        matching = application.matching_cash + application.matching_in_kind
        needed = application.requested.percent(rules.min_matching_bp)
        if matching < needed:
            problems.append(f"matching funds {matching} are below the required {needed}")
    if rules.youth_program and application.youth == 0:
        problems.append(f"{rules.code} is a youth program: the delegation needs youth")
    return problems


def review_score_bp(rubric: Rubric, review: ReviewCompleted) -> int:
    """The review's weighted total under the snapshot rubric (the reviewer's own as fallback)."""
    scores = {score.criterion: score.score for score in review.scores}
    if all(criterion.name in scores for criterion in rubric.criteria):
        return rubric.weighted_total_bp(scores)
    return review.weighted_total_bp


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


def tranche_amounts(award: Money, rules: ProgramRules) -> list[Money]:
    """Each tranche's amount; the parts add up to the award exactly."""
    return award.split([tranche.share_bp for tranche in rules.tranches])


def rescheduled_tranches(
    planned: list[Money], paid_tranches: set[int], new_award: Money, already_paid: Money
) -> list[Money]:
    """Spread what is left of a changed award over the tranches not paid yet, by their shares.

    Paid tranches keep their amounts; when the new award is below what was paid, the
    unpaid tranches become zero (the excess is refunded separately).
    """
    unpaid = [index for index in range(1, len(planned) + 1) if index not in paid_tranches]
    remaining = new_award - already_paid
    result = list(planned)
    if not unpaid:
        return result
    if remaining.amount_minor <= 0:
        for index in unpaid:
            result[index - 1] = Money.zero(new_award.currency)
        return result
    weights = [max(planned[index - 1].amount_minor, 1) for index in unpaid]
    total = sum(weights)
    shares = [weight * 10_000 // total for weight in weights]
    shares[-1] = 10_000 - sum(shares[:-1])
    for index, part in zip(unpaid, remaining.split(shares), strict=True):
        result[index - 1] = part
    return result


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
