"""Money is integer minor units with a currency: no floats, no mixed currencies."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.contracts.money import (
    MAX_MINOR_UNITS,
    MINOR_UNIT_EXPONENT,
    CurrencyMismatchError,
    Money,
    round_half_up,
)

# Half the bound either way, so that sums of two stay amounts the contract accepts.
amounts = st.integers(min_value=-(MAX_MINOR_UNITS // 2), max_value=MAX_MINOR_UNITS // 2)


def usd(amount: int) -> Money:
    return Money(amount_minor=amount, currency="USD")


def test_a_float_amount_is_refused() -> None:
    with pytest.raises(ValidationError, match="valid integer"):
        Money(amount_minor=10.5, currency="USD")  # type: ignore[arg-type]


def test_json_writes_a_whole_number_either_way_but_text_and_booleans_are_refused() -> None:
    # JSON has one kind of number: 100.0 is the integer 100 (what the OpenAPI schema's
    # "integer" allows); 100.5, "100" and true are not minor units.
    assert Money.model_validate({"amount_minor": 100.0, "currency": "USD"}).amount_minor == 100
    for wrong in (100.5, "100", True):
        with pytest.raises(ValidationError):
            Money.model_validate({"amount_minor": wrong, "currency": "USD"})


def test_an_unknown_or_malformed_currency_is_refused() -> None:
    with pytest.raises(ValidationError, match="ISO-4217"):
        Money(amount_minor=1, currency="XYZ")
    with pytest.raises(ValidationError):
        Money(amount_minor=1, currency="usd")


def test_mixed_currencies_cannot_be_added_or_compared() -> None:
    with pytest.raises(CurrencyMismatchError, match="USD with KES"):
        _ = usd(100) + Money(amount_minor=100, currency="KES")
    with pytest.raises(CurrencyMismatchError):
        _ = usd(100) < Money(amount_minor=100, currency="KES")


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Money.model_validate({"amount_minor": 1, "currency": "USD", "rate": 2})


@pytest.mark.parametrize("amount", [MAX_MINOR_UNITS + 1, -MAX_MINOR_UNITS - 1, 2**63, 10**30])
def test_an_amount_beyond_what_the_ledger_holds_is_refused(amount: int) -> None:
    with pytest.raises(ValidationError, match="amount_minor"):
        Money(amount_minor=amount, currency="USD")


def test_money_reads_like_a_person_writes_it() -> None:
    assert str(usd(1_234_567)) == "12,345.67 USD"
    assert str(Money(amount_minor=5000, currency="JPY")) == "5,000 JPY"
    assert str(usd(-5)) == "-0.05 USD"


@given(amounts, amounts)
def test_addition_and_subtraction_are_exact(left: int, right: int) -> None:
    assert (usd(left) + usd(right)).amount_minor == left + right
    assert (usd(left) + usd(right) - usd(right)) == usd(left)


@given(
    st.integers(min_value=0, max_value=10**13),
    st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=5),
)
def test_a_split_adds_up_to_the_whole_and_never_overpays_a_tranche(
    award: int, raw_shares: list[int]
) -> None:
    total = sum(raw_shares)
    shares = [share * 10_000 // total for share in raw_shares]
    shares[-1] += 10_000 - sum(shares)
    parts = usd(award).split(shares)
    assert sum(part.amount_minor for part in parts) == award
    for part, share in zip(parts[:-1], shares[:-1], strict=True):
        assert part.amount_minor <= award * share / 10_000


def test_seventy_thirty_tranches() -> None:
    assert usd(1_000_001).split([7000, 3000]) == [usd(700_000), usd(300_001)]


CURRENCIES = sorted(MINOR_UNIT_EXPONENT)
rates = st.decimals(
    min_value="0.000001", max_value="5000", places=6, allow_nan=False, allow_infinity=False
).map(lambda value: format(value.normalize(), "f"))
# Small enough that any rate and exponent shift keeps the result inside the bound.
conversion_amounts = st.integers(min_value=1, max_value=10**9)


@given(
    amount=st.integers(min_value=-(10**15), max_value=10**15), currency=st.sampled_from(CURRENCIES)
)
def test_converting_at_rate_one_within_a_currency_changes_nothing(
    amount: int, currency: str
) -> None:
    money = Money(amount_minor=amount, currency=currency)
    assert money.converted(currency, "1") == money


@given(
    amount=conversion_amounts,
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
    converted = Money(amount_minor=amount, currency=source).converted(target, rate)
    assert converted.currency == target
    assert abs(converted.amount_minor - exact) <= Fraction(1, 2)


@given(first=conversion_amounts, second=conversion_amounts, rate=rates)
def test_conversion_never_reverses_the_order_of_two_amounts(
    first: int, second: int, rate: str
) -> None:
    low, high = sorted((first, second))
    assert (
        Money(amount_minor=low, currency="KES").converted("USD", rate).amount_minor
        <= Money(amount_minor=high, currency="KES").converted("USD", rate).amount_minor
    )


@given(st.fractions(min_value=-(10**9), max_value=10**9))
def test_rounding_goes_to_the_nearest_whole_and_halves_away_from_zero(value: Fraction) -> None:
    rounded = round_half_up(value)
    assert abs(rounded - value) <= Fraction(1, 2)
    if abs(value - int(value)) == Fraction(1, 2):
        assert abs(rounded) > abs(value)
    assert round_half_up(-value) == -rounded
