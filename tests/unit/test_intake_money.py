"""Hypothesis tests of intake's money rules: the request equation and the matching share.

Intake converts with ``Money.converted`` (tested in test_money.py) and judges the maximum
award and the matching share with ``ProgramRules``; these tests hold what an applicant meets.
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.catalog import load_catalog
from services.intake.domain import DRAFT_EXAMPLE, DraftFields, MemberFacts, check_submission
from shared.contracts.money import Money

line_amounts = st.lists(
    st.tuples(st.sampled_from(["USD", "KES", "CNY", "JPY"]), st.integers(1, 10**9)),
    min_size=1,
    max_size=8,
)
RATES = {("KES", "USD"): "0.0077", ("CNY", "USD"): "0.1385", ("JPY", "USD"): "0.0066"}
AUPAP = load_catalog().programs["AUPAP"]
DENVER = MemberFacts("demo-member-1", "Denver", "US", membership_active=True, good_standing=True)


def usd(minor: int) -> dict[str, object]:
    return {"amount_minor": minor, "currency": "USD"}


@settings(max_examples=300)
@given(
    lines=line_amounts,
    matching_share=st.fractions(min_value=0, max_value=1),
    in_kind_share=st.fractions(min_value=0, max_value=1),
    request_error=st.sampled_from([0, 0, 0, 1, -1, 100]),
    max_award_minor=st.integers(1, 10**10),
    min_matching_bp=st.integers(0, 10_000),
)
def test_money_rules_accept_exactly_what_the_arithmetic_allows(
    lines: list[tuple[str, int]],
    matching_share: Fraction,
    in_kind_share: Fraction,
    request_error: int,
    max_award_minor: int,
    min_matching_bp: int,
) -> None:
    budget = [
        {
            "category": "travel",
            "description": f"line {index}",
            "amount": {"amount_minor": amount, "currency": currency},
        }
        for index, (currency, amount) in enumerate(lines)
    ]
    converted = [
        Money(amount_minor=amount, currency=currency).converted(
            "USD", "1" if currency == "USD" else RATES[(currency, "USD")]
        )
        for currency, amount in lines
    ]
    total = sum(money.amount_minor for money in converted)
    matching = int(total * matching_share)
    in_kind = int(matching * in_kind_share)
    requested = total - matching + request_error
    rules = AUPAP.model_copy(
        update={
            "max_award": Money(amount_minor=max_award_minor, currency="USD"),
            "min_matching_bp": min_matching_bp,
        }
    )
    draft = DraftFields.model_validate(
        {
            **DRAFT_EXAMPLE,
            "budget_lines": budget,
            "requested": usd(requested),
            "matching_cash": usd(matching - in_kind),
            "matching_in_kind": usd(in_kind),
        }
    )

    checked = check_submission(
        draft,
        member=DENVER,
        rules=rules,
        rates=RATES,
        today=date(2026, 11, 27),
        exchange_lead_days=1,
    )

    expected_ok = (
        requested > 0
        and requested == total - matching
        and requested <= max_award_minor
        and Fraction(matching, total) >= Fraction(min_matching_bp, 10_000)
    )
    assert checked.ready == expected_ok, checked.problems
    pricing = checked.pricing
    assert pricing is not None
    assert pricing.total.amount_minor == sum(line.converted.amount_minor for line in pricing.lines)
    if expected_ok:
        # What the workflow will be asked to fund adds up exactly, in the program currency.
        assert (
            pricing.requested.amount_minor + pricing.matching.amount_minor
            == pricing.total.amount_minor
        )
        assert all(line.fx_rate is not None for line in pricing.lines)
        assert {line.converted.currency for line in pricing.lines} == {"USD"}
