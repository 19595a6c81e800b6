"""The lifecycle's rules without Temporal: screening, scoring, tranches and close-out."""

from __future__ import annotations

from datetime import timedelta

from shared.contracts.money import Money
from tests.support.workflows import program_rules, review, submission, usd
from workflows.funding import domain


def test_eligible_application_passes_screening() -> None:
    assert domain.screen(submission().payload) == []


def test_screening_names_every_problem() -> None:
    base = submission().payload
    application = base.model_copy(
        update={
            "partner": base.partner.model_copy(update={"country": "FR"}),
            "focus_area": "youth_and_education",
            "matching_cash": usd(0),
            "matching_in_kind": usd(100),
        }
    )
    problems = domain.screen(application)
    assert len(problems) == 3
    assert "partner country FR is not eligible" in problems[0]
    assert "focus area youth_and_education" in problems[1]
    assert "matching funds 100.00 USD are below the required 2,500.00 USD" in problems[2]


def test_youth_program_needs_youth_and_dates_within_the_period() -> None:
    rules = program_rules(youth_program=True)
    base = submission(rules=rules).payload
    late = base.model_copy(
        update={"youth": 0, "exchange_end": rules.exchange_period_end + timedelta(days=1)}
    )
    problems = domain.screen(late)
    assert any("youth program" in problem for problem in problems)
    assert any("must take place between" in problem for problem in problems)


def test_passing_score_awards_the_request_capped_at_the_maximum() -> None:
    rules = program_rules(max_award=usd(8_000))
    reviews = [review("a", 1, 1, 4), review("a", 1, 2, 3)]
    decision = domain.decide(rules, reviews, requested=usd(10_000), revisions_so_far=0)
    assert decision.outcome == "awarded"
    assert decision.score_bp == 7_000
    assert decision.award == usd(8_000)
    assert "capped at the program maximum" in decision.reason


def test_near_miss_earns_a_revision_until_revisions_run_out() -> None:
    rules = program_rules()
    reviews = [review("a", 1, 1, 3), review("a", 1, 2, 2)]  # 5000 bp, pass mark 6000
    first = domain.decide(rules, reviews, requested=usd(1_000), revisions_so_far=0)
    last = domain.decide(
        rules, reviews, requested=usd(1_000), revisions_so_far=domain.MAX_REVISIONS
    )
    assert first.outcome == "revision_requested"
    assert last.outcome == "declined"


def test_tranches_add_up_to_the_award() -> None:
    parts = domain.tranche_amounts(Money(amount_minor=1_000_001, currency="USD"), program_rules())
    assert [part.amount_minor for part in parts] == [700_000, 300_001]


def test_a_lower_award_is_spread_over_the_unpaid_tranches() -> None:
    planned = [usd(7_000), usd(3_000)]
    assert domain.rescheduled_tranches(planned, {1}, usd(8_000), usd(7_000)) == [
        usd(7_000),
        usd(1_000),
    ]
    assert domain.rescheduled_tranches(planned, {1}, usd(6_000), usd(7_000)) == [
        usd(7_000),
        usd(0),
    ]


def test_underspend_comes_off_the_final_tranche_then_is_refunded() -> None:
    zero = Money.zero("USD")
    small = domain.close_out(
        award=usd(10_000),
        paid=usd(7_000),
        refunded=zero,
        final_tranches={2: usd(3_000)},
        actual_spending=usd(9_000),
    )
    large = domain.close_out(
        award=usd(10_000),
        paid=usd(7_000),
        refunded=zero,
        final_tranches={2: usd(3_000)},
        actual_spending=usd(5_000),
    )
    assert (small.final_tranches, small.release, small.refund) == (
        {2: usd(2_000)},
        usd(1_000),
        zero,
    )
    assert (large.final_tranches, large.release, large.refund) == (
        {2: zero},
        usd(3_000),
        usd(2_000),
    )


def test_resends_back_off_and_stop_growing() -> None:
    hour = timedelta(hours=1)
    waits = [domain.resend_interval(hour, sends) for sends in (1, 2, 3, 20)]
    assert waits == [hour, 2 * hour, 4 * hour, domain.RESEND_BACKOFF_CAP * hour]
