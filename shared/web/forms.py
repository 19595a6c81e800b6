"""What the pages' forms share: problems keyed by field, amounts typed by people."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from shared.contracts.money import MINOR_UNIT_EXPONENT
from shared.errors import Problem, field_name, plain_message

_AMOUNT = re.compile(r"^(\d{1,15})(?:[.,](\d+))?$")


class Problems(dict[str, list[str]]):
    """Problem sentences by the field they concern (``""``: the form as a whole)."""

    @classmethod
    def of(cls, problems: Iterable[Problem]) -> Problems:
        found = cls()
        for problem in problems:
            found.add(problem.field, problem.message)
        return found

    @classmethod
    def of_validation(cls, error: ValidationError, prefix: str = "") -> Problems:
        found = cls()
        for detail in error.errors():
            loc = (prefix, *detail["loc"]) if prefix else detail["loc"]
            found.add(field_name(loc), plain_message({**dict(detail), "loc": loc}))
        return found

    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)

    def at(self, field: str) -> list[str]:
        """The sentences about ``field`` itself."""
        return self.get(field, [])

    def under(self, field: str) -> list[str]:
        """The sentences about ``field`` and its parts (``requested.currency``)."""
        return [m for name, messages in self.items() if _within(name, field) for m in messages]

    def elsewhere(self, inputs: Iterable[str], groups: Iterable[str] = ()) -> list[str]:
        """The sentences no input (nor group of inputs) of the form shows, so none is lost."""
        inputs, groups = list(inputs), set(groups)
        return [
            message
            for name, messages in self.items()
            if name not in groups and not any(_within(name, shown) for shown in inputs)
            for message in messages
        ]


def _within(name: str, field: str) -> bool:
    return name == field or name.startswith((f"{field}.", f"{field}["))


def minor_units(text: str, currency: str) -> int:
    """``"1,250.50"`` in ``USD`` -> 125050; ``ValueError`` with a sentence if it is no amount."""
    cleaned = text.strip().replace(" ", "").replace("_", "")
    if cleaned.count(",") and cleaned.count("."):
        cleaned = cleaned.replace(",", "")  # thousands separators beside a decimal point
    match = _AMOUNT.match(cleaned)
    if not match:
        raise ValueError("should be an amount such as 1250 or 1250.50")
    exponent = MINOR_UNIT_EXPONENT.get(currency, 2)
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > exponent:
        places = "no decimals" if exponent == 0 else f"at most {exponent} decimals"
        raise ValueError(f"should have {places} in {currency}")
    units: int = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    return units


def major_units(amount_minor: int, currency: str) -> str:
    """The amount as a person types it back: 125050 in USD -> ``"1250.50"``."""
    exponent = MINOR_UNIT_EXPONENT.get(currency, 2)
    whole, fraction = divmod(amount_minor, 10**exponent)
    return str(whole) if exponent == 0 else f"{whole}.{fraction:0{exponent}d}"


def money_value(value: Any) -> str:
    """A ``Money``-shaped value as a person types it, or ``""``."""
    if value is None:
        return ""
    return major_units(int(value.amount_minor), str(value.currency))
