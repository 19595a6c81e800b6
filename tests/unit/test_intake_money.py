"""Hypothesis tests of the money rules: conversion, the request equation, the matching share."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.domain import BudgetLineInput, check_money, convert, round_half_up
from shared.contracts.money import MINOR_UNIT_EXPONENT, Money

CURRENCIES = sorted(MINOR_UNIT_EXPONENT)
rates = st.decimals(
    min_value="0.000001", max_value="5000", places=6, allow_nan=False, allow_infinity=False
).map(lambda value: format(value.normalize(), "f"))
amounts = st.integers(min_value=1, max_value=10**12)


@given(
    amount=st.integers(min_value=-(10**15), max_value=10**15), currency=st.sampled_from(CURRENCIES)
)
def test_converting_at_rate_one_within_a_currency_changes_nothing(
    amount: int, currency: str
) -> None:
    money = Money(amount_minor=amount, currency=currency)
    assert convert(money, currency, "1") == money


@given(
    amount=amounts,
    source=st.sampled_from(CURRENCIES),
    target=st.sampled_from(CURRENCIES),
    rate=rates,
)
def test_conversion_is_within_half_a_minor_unit_of_the_exact_value(
    amount: int, source: str, target: str, rate: str
) -> None:
    exact = (
        Fraction(amount)
        * Fraction(rate)
        * Fraction(10) ** (MINOR_UNIT_EXPONENT[target] - MINOR_UNIT_EXPONENT[source])
    )
    converted = convert(Money(amount_minor=amount, currency=source), target, rate)
    assert converted.currency == target
    assert abs(converted.amount_minor - exact) <= Fraction(1, 2)


@given(first=amounts, second=amounts, rate=rates)
def test_conversion_never_reverses_the_order_of_two_amounts(
    first: int, second: int, rate: str
) -> None:
    low, high = sorted((first, second))
    assert (
        convert(Money(amount_minor=low, currency="KES"), "USD", rate).amount_minor
        <= convert(Money(amount_minor=high, currency="KES"), "USD", rate).amount_minor
    )


@given(st.fractions(min_value=-(10**9), max_value=10**9))
def test_rounding_goes_to_the_nearest_whole_and_halves_away_from_zero(value: Fraction) -> None:
    rounded = round_half_up(value)
    assert abs(rounded - value) <= Fraction(1, 2)
    if abs(value - int(value)) == Fraction(1, 2):
        assert abs(rounded) > abs(value)
    assert round_half_up(-value) == -rounded


line_amounts = st.lists(
    st.tuples(st.sampled_from(["USD", "KES", "CNY", "JPY"]), st.integers(1, 10**9)),
    min_size=1,
    max_size=8,
)
RATES = {("KES", "USD"): "0.0077", ("CNY", "USD"): "0.1385", ("JPY", "USD"): "0.0066"}


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
        BudgetLineInput(
            category="travel",
            description=f"line {index}",
            amount=Money(amount_minor=amount, currency=currency),
        )
        for index, (currency, amount) in enumerate(lines)
    ]
    converted = [
        convert(
            line.amount,
            "USD",
            "1" if line.amount.currency == "USD" else RATES[(line.amount.currency, "USD")],
        )
        for line in budget
    ]
    total = sum(money.amount_minor for money in converted)
    matching = int(total * matching_share)
    in_kind = int(matching * in_kind_share)
    requested = total - matching + request_error

    problems, pricing = check_money(
        budget_lines=budget,
        requested=Money(amount_minor=requested, currency="USD"),
        matching_cash=Money(amount_minor=matching - in_kind, currency="USD"),
        matching_in_kind=Money(amount_minor=in_kind, currency="USD"),
        currency="USD",
        max_award=Money(amount_minor=max_award_minor, currency="USD"),
        min_matching_bp=min_matching_bp,
        rates=RATES,
    )

    expected_ok = (
        requested > 0
        and requested == total - matching
        and requested <= max_award_minor
        and Fraction(matching, total) >= Fraction(min_matching_bp, 10_000)
    )
    assert (not problems) == expected_ok, problems
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
