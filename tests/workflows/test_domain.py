"""The lifecycle's rules without Temporal: screening, scoring, tranches and close-out."""

from __future__ import annotations

from datetime import timedelta

from shared.contracts.intake import BudgetLine
from shared.contracts.money import Money
from shared.contracts.programs import PartnerRequirement, rescheduled_tranches
from tests.support.workflows import program_rules, review, submission, usd
from workflows.funding import domain


def test_eligible_application_passes_screening() -> None:
    assert domain.screening_problems(submission().payload) == []


def test_screening_names_every_problem_in_the_program_rules_words() -> None:
    base = submission().payload
    application = base.model_copy(
        update={
            "member_in_good_standing": False,
            "partner": base.partner.model_copy(update={"country": "FR"}),
            "focus_area": "youth_and_education",
            "matching_cash": usd(0),
            "matching_in_kind": usd(100),
        }
    )
    assert domain.screening_problems(application) == [
        "Springfield is not in good standing (a report is overdue)",
        "partners in FR are not eligible for AUPAP; eligible countries: KE, GH, TZ",
        "AUPAP funds community development and business and trade, not youth and education",
        "matching funds (cash and in kind, 100.00 USD) are 1% of the budget total "
        "10,000.00 USD; the program requires at least 25%",
    ]


def test_the_matching_share_is_of_the_budget_total_not_of_the_request() -> None:
    # 4,000 of matching funds: 40% of the 10,000 requested, but 20% of a 20,000 budget.
    lines = [
        BudgetLine(
            category="travel", description="flights", amount=usd(12_000), converted=usd(12_000)
        ),
        BudgetLine(category="venue", description="hall", amount=usd(8_000), converted=usd(8_000)),
    ]
    application = submission(budget_lines=lines).payload
    (problem,) = domain.screening_problems(application)
    assert "are 20% of the budget total 20,000.00 USD" in problem


def test_youth_program_needs_youth_and_dates_within_the_period() -> None:
    rules = program_rules(youth_program=True)
    base = submission(rules=rules).payload
    late = base.model_copy(
        update={"youth": 0, "exchange_end": rules.exchange_period_end + timedelta(days=1)}
    )
    problems = domain.screening_problems(late)
    assert any("youth program" in problem for problem in problems)
    assert any("must end within the program's exchange period" in p for p in problems)


def test_a_multi_partner_program_names_the_partner_that_is_missing() -> None:
    rules = program_rules(
        eligible_partner_countries=["CA", "MX"],
        required_partners=[
            PartnerRequirement(countries=["CA"]),
            PartnerRequirement(countries=["MX"]),
        ],
    )
    base = submission(rules=rules).payload
    toronto = base.partner.model_copy(update={"name": "Toronto", "country": "CA"})
    only_canada = base.model_copy(update={"partner": toronto})
    assert domain.screening_problems(only_canada) == ["a partner in MX is required"]
    puebla = toronto.model_copy(
        update={"name": "Puebla", "country": "MX", "contact_email": "amistad@puebla.example"}
    )
    both = only_canada.model_copy(update={"other_partners": [puebla]})
    assert domain.screening_problems(both) == []
    assert [p.name for p in both.every_partner()] == ["Toronto", "Puebla"]


def test_a_requirement_with_a_name_is_named_so() -> None:
    africa = PartnerRequirement(countries=["KE", "GH", "TZ"], name="an African country")
    rules = program_rules(
        eligible_partner_countries=["CN", "KE", "GH", "TZ"],
        required_partners=[PartnerRequirement(countries=["CN"]), africa],
    )
    base = submission(rules=rules).payload
    beijing = base.partner.model_copy(update={"name": "Beijing", "country": "CN"})
    assert domain.screening_problems(base.model_copy(update={"partner": beijing})) == [
        "a partner in an African country is required"
    ]
    assert PartnerRequirement(countries=["KE", "GH"]).describe() == "one of KE, GH"


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
    parts = program_rules().tranche_plan(Money(amount_minor=1_000_001, currency="USD"))
    assert [part.amount_minor for part in parts] == [700_000, 300_001]


def test_a_lower_award_is_spread_over_the_unpaid_tranches() -> None:
    planned = [usd(7_000), usd(3_000)]
    assert rescheduled_tranches(planned, {1}, usd(8_000), usd(7_000)) == [
        usd(7_000),
        usd(1_000),
    ]
    assert rescheduled_tranches(planned, {1}, usd(6_000), usd(7_000)) == [
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
