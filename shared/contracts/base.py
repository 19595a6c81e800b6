"""The base of every payload, and the bounded types its fields are made of.

Every text, number and list of the contract has a bound, and every column that stores a
contract field is at least as long as the field's bound (tests/unit/test_bounds.py walks
both): a payload the contract accepts can always be stored, on SQLite and PostgreSQL.
A column stores the contract field of its own name, or the one its ``info`` names with
``stores(Model, "field")``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictInt


class Contract(BaseModel):
    """Unknown fields are an error, not silently dropped; payloads are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _text(most: int, *, least: int = 0, **extra: Any) -> Any:
    return Field(min_length=least, max_length=most, **extra)


# Identifiers.
ApplicationId = Annotated[str, _text(64, least=1)]
MemberId = Annotated[str, _text(64, least=1)]
ReviewerId = Annotated[str, _text(64, least=1)]
TaskId = Annotated[str, _text(36, least=1)]
ReportId = Annotated[str, _text(128, least=1)]
CommandId = Annotated[str, _text(200, least=1)]
Reference = Annotated[str, _text(200, least=1, description="A key such as '<application>:1'.")]
ProgramCode = Annotated[str, _text(40, least=1)]
Cycle = Annotated[str, _text(20, least=1)]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO-3166 alpha-2 code.")]
Stage = Annotated[str, _text(40, least=1)]
Category = Annotated[str, _text(100, least=1)]
FocusArea = Annotated[str, _text(40, least=1)]

# Explicit characters rather than \s, whose meaning differs between regex engines (the
# schema's readers and pydantic's must agree on what the pattern allows).
EMAIL_PATTERN = r"^[^@ \t\n\r\f\v]+@[^@ \t\n\r\f\v]+\.[^@ \t\n\r\f\v]+$"

# Unicode's White_Space, what pydantic strips: \s in ECMA-262 leaves out U+0085, so a fuzzer
# took "\x85" for text, which pydantic then stripped to nothing.
WHITE_SPACE = r"\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Some text besides white space (a pattern is searched for, not matched whole).
HAS_TEXT = f"[^{WHITE_SPACE}]"
# At least three characters once stripped: two with one or more between them.
HAS_THREE = rf"{HAS_TEXT}[\s\S]+{HAS_TEXT}"
_WHITE_SPACE_CHARACTERS = "".join(
    chr(code)
    for code in (
        *range(0x9, 0xE),
        *(0x20, 0x85, 0xA0, 0x1680),
        *range(0x2000, 0x200B),
        *(0x2028, 0x2029, 0x202F, 0x205F, 0x3000),
    )
)


def stripped(text: str) -> str:
    """``text`` without the white space around it, as ``WHITE_SPACE`` says (``str.strip``
    also takes U+001C..U+001F, which the schema counts as text)."""
    return text.strip(_WHITE_SPACE_CHARACTERS)


# What people write.
CityName = Annotated[str, _text(200, least=1)]
PersonName = Annotated[str, _text(200, least=1)]
Email = Annotated[str, _text(254, least=3)]
Title = Annotated[str, _text(200)]
Description = Annotated[str, _text(500)]
Reason = Annotated[str, _text(2000)]
LongText = Annotated[str, _text(20_000)]


def whole_number(value: Any) -> Any:
    """JSON's integers: ``226`` and ``226.0`` are one number; ``226.5``, ``"226"`` and ``true``
    are not (the strict check after this refuses them)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer as JSON (and the OpenAPI schema's "integer") means it: no text, no booleans.
WholeNumber = Annotated[StrictInt, BeforeValidator(whole_number)]

_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_ISO_DATE_TIME = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def iso_date(value: Any) -> Any:
    """A JSON date is text such as ``2027-05-10``; pydantic's lax mode also reads a number as
    a Unix time, which the schema's ``format: date`` forbids (the strict check refuses it)."""
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return date.fromisoformat(value)
    return value


def iso_date_time(value: Any) -> Any:
    """An RFC 3339 date-time, with its offset (``2027-05-10T09:00:00Z``), and nothing else:
    not ``0``, not ``0.5``, which lax mode reads as Unix times."""
    if isinstance(value, str) and _ISO_DATE_TIME.fullmatch(value):
        return datetime.fromisoformat(value.upper())
    return value


# Dates and times as the schema describes them: for request fields and query parameters.
IsoDate = Annotated[date, Strict(), BeforeValidator(iso_date)]
IsoDateTime = Annotated[datetime, Strict(), BeforeValidator(iso_date_time)]

# Counts and sequence numbers: inside the 32-bit columns that store them.
MAX_COUNT = 2**31 - 1
Round = Annotated[int, Field(ge=1, le=1000)]
Sequence = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Count = Annotated[int, Field(ge=0, le=100_000)]


# A column's ``info`` when its name is a contract field's but it stores something else.
NOT_A_CONTRACT_FIELD: dict[str, Any] = {"stores": None}


def stores(model: type[BaseModel], field: str) -> dict[str, Any]:
    """A column's ``info``: it stores ``model.field`` (so it must be at least as long)."""
    if field not in model.model_fields:
        raise KeyError(f"{model.__name__} has no field {field!r}")
    return {"stores": (model, field)}
