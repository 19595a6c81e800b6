"""The base of every payload, and the bounded types its fields are made of.

Every text, number and list of the contract has a bound, and every column that stores a
contract field is at least as long as the field's bound (tests/unit/test_bounds.py walks
both): a payload the contract accepts can always be stored, on SQLite and PostgreSQL.
A column stores the contract field of its own name, or the one its ``info`` names with
``stores(Model, "field")``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt


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
