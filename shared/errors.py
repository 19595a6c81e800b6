"""The one error vocabulary of every service, and the handlers that turn it into HTTP.

A use case raises ``NotFoundError``, ``ForbiddenError``, ``ConflictError``, ``GoneError``
or ``InvalidError`` (with the fields at fault); ``install_error_handlers`` answers 404,
403, 409, 410 and 422. Every body has a ``detail``: a sentence, or for 422 a list of
problems, each with its ``loc`` (FastAPI's shape), the dotted ``field`` and a ``msg`` a
person can read. A consumer's use case raises ``InvalidCommandError`` for a message that
can never be processed; the consumer helper dead-letters it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: the field at fault (``budget_lines[2].amount``)."""

    field: str
    message: str
    kind: str = "value_error"

    @property
    def loc(self) -> list[str | int]:
        parts: list[str | int] = []
        for piece in self.field.replace("]", "").replace("[", ".").split("."):
            if piece:
                parts.append(int(piece) if piece.isdigit() else piece)
        return ["body", *parts]


class ServiceError(Exception):
    """A request a service refuses; ``str(error)`` is the sentence the caller reads."""

    status_code: ClassVar[int] = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(ServiceError):
    status_code = 404


class ForbiddenError(ServiceError):
    status_code = 403


class ConflictError(ServiceError):
    status_code = 409


class GoneError(ServiceError):
    status_code = 410


class InvalidError(ServiceError):
    status_code = 422

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = list(problems)

    @classmethod
    def at(cls, field: str, message: str, kind: str = "value_error") -> InvalidError:
        return cls([Problem(field, message, kind)])


class InvalidCommandError(Exception):
    """A consumed message that can never be processed (it goes to the dead letters)."""


class ProblemBody(BaseModel):
    loc: list[str | int]
    field: str
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The body of every 4xx answer."""

    detail: str | list[ProblemBody]


_PLAIN_WORDS = {
    "missing": "{field} is required",
    "extra_forbidden": "{field} is not something you can set here",
    "json_invalid": "the body is not valid JSON",
    "int_type": "{field} must be a whole number",
    "int_parsing": "{field} must be a whole number",
    "bool_type": "{field} must be true or false",
    "bool_parsing": "{field} must be true or false",
    "date_from_datetime_parsing": "{field} must be a date such as 2027-05-10",
    "date_parsing": "{field} must be a date such as 2027-05-10",
    "date_type": "{field} must be a date such as 2027-05-10",
    "literal_error": "{field} must be one of: {expected}",
    "enum": "{field} must be one of: {expected}",
}


def field_name(loc: Sequence[Any]) -> str:
    """``("body", "budget_lines", 2, "amount")`` -> ``budget_lines[2].amount``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def plain_message(problem: dict[str, Any]) -> str:
    """A validation problem as a sentence about its field."""
    field = field_name(problem.get("loc", ()))
    kind = str(problem.get("type", ""))
    if kind in _PLAIN_WORDS:
        expected = (problem.get("ctx") or {}).get("expected", "")
        return _PLAIN_WORDS[kind].format(field=field, expected=expected)
    if kind == "string_pattern_mismatch":
        if field.endswith("email"):
            return f"{field} must be an email address"
        if field.endswith("country"):
            return f"{field} must be a two-letter country code such as KE"
        if field.endswith("currency"):
            return f"{field} must be a three-letter currency code such as USD"
        if field.endswith("rate"):
            return f'{field} must be a positive decimal number written as text, e.g. "0.0077"'
    return f"{field}: {problem.get('msg', 'is not valid')}"


def validation_problems(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "loc": list(item.get("loc", ())),
            "field": field_name(item.get("loc", ())),
            "msg": plain_message(item),
            "type": item.get("type", "value_error"),
        }
        for item in items
    ]


def error_response(error: ServiceError) -> JSONResponse:
    if isinstance(error, InvalidError):
        detail: Any = [
            {"loc": p.loc, "field": p.field, "msg": p.message, "type": p.kind}
            for p in error.problems
        ]
    else:
        detail = error.message
    return JSONResponse({"detail": detail}, status_code=error.status_code)


def install_error_handlers(app: FastAPI) -> None:
    async def invalid_request(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return JSONResponse({"detail": validation_problems(list(error.errors()))}, 422)

    async def refused(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ServiceError)
        return error_response(error)

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(ServiceError, refused)
