"""Money as an integer number of minor units with an ISO-4217 currency.

Floats are refused on purpose: 0.1 + 0.2 is not 0.3, and a grant ledger must add up.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.contracts.base import WholeNumber

# Minor-unit exponents of the currencies a sister-city program is likely to meet.
# A currency that is not listed here is refused rather than guessed.
MINOR_UNIT_EXPONENT: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CAD": 2,
    "MXN": 2,
    "CNY": 2,
    "JPY": 0,
    "KRW": 0,
    "INR": 2,
    "IDR": 2,
    "PHP": 2,
    "VND": 0,
    "THB": 2,
    "MYR": 2,
    "SGD": 2,
    "TWD": 2,
    "KES": 2,
    "ZAR": 2,
    "NGN": 2,
    "GHS": 2,
    "ETB": 2,
    "TZS": 2,
    "UGX": 0,
    "RWF": 0,
    "EGP": 2,
    "MAD": 2,
    "XOF": 0,
    "XAF": 0,
    "AUD": 2,
    "NZD": 2,
    "CHF": 2,
    "BRL": 2,
}

# The schema lists the known codes, so that a client (or a fuzzer) learns which are taken.
CurrencyCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{3}$",
        examples=["USD", "KES"],
        json_schema_extra={"enum": sorted(MINOR_UNIT_EXPONENT)},
    ),
]

# The largest amount the system holds, in minor units (ten trillion dollars in cents): far
# beyond any grant, far inside the 64-bit columns that store amounts and their sums.
MAX_MINOR_UNITS = 10**15

# An exchange rate as decimal text, more than zero: units of the target currency per unit of
# the source. The pattern alone says "positive" (a nonzero digit before the point, or one
# after "0."), so that every rate the schema allows is one the services accept.
RATE_PATTERN = r"^([1-9][0-9]{0,8}(\.[0-9]{1,12})?|0\.0{0,11}[1-9][0-9]{0,11})$"
RATE_MAX_LENGTH = 22
ExchangeRate = Annotated[
    str, Field(pattern=RATE_PATTERN, max_length=RATE_MAX_LENGTH, examples=["0.0077", "1"])
]


def parse_rate(rate: str) -> Fraction:
    """An exchange rate written as decimal text, exactly (never through a float)."""
    if len(rate) > RATE_MAX_LENGTH or not re.fullmatch(RATE_PATTERN, rate):
        raise ValueError(f"exchange rate {rate!r} must be a positive decimal number")
    return Fraction(rate)


def round_half_up(value: Fraction) -> int:
    """The nearest integer, halves away from zero (what a person expects of cents)."""
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


MinorUnits = WholeNumber


class CurrencyMismatchError(ValueError):
    """Raised when two amounts in different currencies are combined."""

    def __init__(self, left: str, right: str) -> None:
        super().__init__(f"cannot combine {left} with {right}: convert one of them first")


class Money(BaseModel):
    """An amount in minor units (cents for USD) and its ISO-4217 currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount_minor: MinorUnits = Field(
        ge=-MAX_MINOR_UNITS,
        le=MAX_MINOR_UNITS,
        description="Amount in the currency's minor units.",
    )
    currency: CurrencyCode

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in MINOR_UNIT_EXPONENT:
            raise ValueError(f"unknown currency code {value!r}: use an ISO-4217 code")
        return value

    @classmethod
    def zero(cls, currency: str) -> Self:
        return cls(amount_minor=0, currency=currency)

    def _same_currency(self, other: Any) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"Money can only be combined with Money, not {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(self.currency, other.currency)
        return other

    def __add__(self, other: Any) -> Money:
        other = self._same_currency(other)
        return Money(amount_minor=self.amount_minor + other.amount_minor, currency=self.currency)

    def __sub__(self, other: Any) -> Money:
        other = self._same_currency(other)
        return Money(amount_minor=self.amount_minor - other.amount_minor, currency=self.currency)

    def __eq__(self, other: object) -> bool:
        # A Payment and a Money of the same amount are the same money.
        if not isinstance(other, Money):
            return NotImplemented
        return (self.amount_minor, self.currency) == (other.amount_minor, other.currency)

    def __hash__(self) -> int:
        return hash((self.amount_minor, self.currency))

    def __neg__(self) -> Money:
        return Money(amount_minor=-self.amount_minor, currency=self.currency)

    def __lt__(self, other: Any) -> bool:
        return self.amount_minor < self._same_currency(other).amount_minor

    def __le__(self, other: Any) -> bool:
        return self.amount_minor <= self._same_currency(other).amount_minor

    def __gt__(self, other: Any) -> bool:
        return self.amount_minor > self._same_currency(other).amount_minor

    def __ge__(self, other: Any) -> bool:
        return self.amount_minor >= self._same_currency(other).amount_minor

    def percent(self, basis_points: int) -> Money:
        """The share of this amount given in basis points (7000 = 70%), rounded down.

        Rounding down keeps a tranche schedule from ever paying more than the award;
        the last tranche takes the remainder (see ``split``).
        """
        if not isinstance(basis_points, int) or isinstance(basis_points, bool):
            raise TypeError("basis points must be an integer")
        return Money(
            amount_minor=self.amount_minor * basis_points // 10_000, currency=self.currency
        )

    def converted(self, currency: str, rate: Fraction | str) -> Money:
        """This amount in ``currency`` at ``rate`` (units of ``currency`` per unit of ours).

        Minor units are converted exactly and rounded once, half up. The one conversion
        of the system: intake prices budgets with it, disbursement pays with it, reporting
        converts spending with it.
        """
        exact_rate = rate if isinstance(rate, Fraction) else parse_rate(rate)
        if exact_rate <= 0:
            raise ValueError("an exchange rate must be positive")
        if currency not in MINOR_UNIT_EXPONENT:
            raise ValueError(f"unknown currency code {currency!r}: use an ISO-4217 code")
        shift = MINOR_UNIT_EXPONENT[currency] - MINOR_UNIT_EXPONENT[self.currency]
        exact = self.amount_minor * exact_rate * Fraction(10) ** shift
        return Money(amount_minor=round_half_up(exact), currency=currency)

    def split(self, shares_basis_points: list[int]) -> list[Money]:
        """Split into parts by basis-point shares that add up to 10000; the parts add up exactly."""
        if sum(shares_basis_points) != 10_000:
            raise ValueError("shares must add up to 10000 basis points (100%)")
        parts = [self.percent(share) for share in shares_basis_points[:-1]]
        paid = sum(part.amount_minor for part in parts)
        parts.append(Money(amount_minor=self.amount_minor - paid, currency=self.currency))
        return parts

    def __str__(self) -> str:
        exponent = MINOR_UNIT_EXPONENT[self.currency]
        sign = "-" if self.amount_minor < 0 else ""
        whole, fraction = divmod(abs(self.amount_minor), 10**exponent)
        text = f"{whole:,}" if exponent == 0 else f"{whole:,}.{fraction:0{exponent}d}"
        return f"{sign}{text} {self.currency}"


class Payment(Money):
    """An amount that cannot be negative: a budget, a payment, what was spent. A ``Money``
    is taken where a Payment is expected, if it is not negative."""

    model_config = ConfigDict(frozen=True, extra="forbid", from_attributes=True)

    amount_minor: MinorUnits = Field(
        ge=0, le=MAX_MINOR_UNITS, description="Amount in the currency's minor units, 0 or more."
    )
