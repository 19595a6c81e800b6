"""The one error vocabulary of every service, and the handlers that turn it into HTTP.

A use case raises ``NotFoundError``, ``ForbiddenError``, ``ConflictError``, ``GoneError``,
``InvalidError`` (the fields at fault in the request) or ``UnmetRulesError`` (the fields at
fault in what is stored); ``install_error_handlers`` answers 404, 403, 409, 410, 422 and
409. Every body has a ``detail``: a sentence, or for 422 (and ``UnmetRulesError``'s 409) a
list of problems, each with its ``loc`` (FastAPI's shape), the dotted ``field`` and a
``msg`` a person can read. A consumer's use case raises ``InvalidCommandError`` for a
message that can never be processed; the consumer helper dead-letters it.

A dependency that does not answer (the database refusing or out of connections, a
dropped connection, ``DependencyUnavailable``) is not the caller's fault: routes answer
503 with ``Retry-After`` and consumers let the message wait (``is_dependency_outage`` is
the one place that says which errors those are).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

logger = logging.getLogger(__name__)


class DependencyUnavailable(Exception):  # noqa: N818 - the name says what the state is
    """Raised when a system the work needs is not answering; the work may succeed later."""


_OUTAGES = (
    DependencyUnavailable,
    ConnectionError,
    TimeoutError,
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
)
# SQLSTATE classes of a database that cannot serve now, whatever was asked: connection
# exceptions (08), insufficient resources such as too many connections (53), and operator
# intervention such as a shutdown in progress (57P).
_OUTAGE_SQLSTATES = ("08", "53", "57P")


def is_dependency_outage(error: BaseException) -> bool:
    """Whether ``error`` says a dependency is not answering (rather than a fault)."""
    if isinstance(error, _OUTAGES):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        return isinstance(state, str) and state.startswith(_OUTAGE_SQLSTATES)
    return False


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


class UnmetRulesError(InvalidError):
    """A well-formed request refused by rules about what is stored (a draft being submitted,
    a task's rubric, the program catalog): 409, with each problem named like a 422's. The
    request alone is valid, so no schema can refuse it; only the state the server holds can.
    """

    status_code = 409


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
    "datetime_type": "{field} must be a date and time such as 2027-05-10T09:00:00Z",
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
    """Answer the vocabulary's errors, name every method of a path in a 405's ``Allow``, and
    declare in the app's OpenAPI document the errors each route can answer."""

    async def invalid_request(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return JSONResponse({"detail": validation_problems(list(error.errors()))}, 422)

    async def refused(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ServiceError)
        return error_response(error)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 405:
            # Starlette names the methods of the first route that matched the path; FastAPI
            # makes one route per method, so the others' methods were missing.
            allowed = ", ".join(allowed_methods(app, request))
            error = StarletteHTTPException(405, error.detail, headers={"Allow": allowed})
        return await http_exception_handler(request, error)

    async def dependency_down(request: Request, error: Exception) -> Response:
        if not is_dependency_outage(error):
            raise error  # a fault: the server error middleware answers 500 and logs it
        logger.warning(
            "%s %s answered 503, a dependency is not answering: %s",
            request.method,
            request.url.path,
            f"{type(error).__name__}: {error}".splitlines()[0][:300],
        )
        return JSONResponse(
            {"detail": "a system this service needs is not answering; try again shortly"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(ServiceError, refused)
    for outage in (*_OUTAGES, DBAPIError):
        app.add_exception_handler(outage, dependency_down)
    app.add_exception_handler(StarletteHTTPException, http_error)
    document_errors(app)


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route of ``app`` answers on the request's path."""
    scope = {**request.scope, "method": "GET"}
    methods: set[str] = set()
    pending: list[Any] = list(app.router.routes)
    while pending:
        route = pending.pop()
        # FastAPI keeps an included router as one entry that hands out its routes.
        included = getattr(route, "effective_candidates", None)
        if callable(included):
            pending += included()
            continue
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(scope)[0] is not Match.NONE:
            methods |= set(route_methods)
    return sorted(methods)


# What each error status means when a route's own declaration does not say.
_ERROR_MEANINGS: dict[str, str] = {
    "401": "bearer token missing, invalid, expired or valid for too long",
    "403": "the caller's role or binding may not do this",
    "404": "no such object, or not yours",
    "409": "the action does not fit the object's state",
    "410": "the link or object is no longer usable",
    "413": "the request body is larger than the service accepts",
    "422": "a field is wrong; each problem names it in plain words",
    "503": "a dependency does not answer (the database, the token signing keys); try again later",
}
_ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


def document_errors(app: FastAPI) -> None:
    """Declare in the OpenAPI document, for every route, the errors it can answer, each
    with the ``ErrorBody`` schema: 503 everywhere (a dependency not answering: the database,
    or the signing keys of a JWKS URL), 401 and 403 where a bearer token is needed, 404
    where the path names an object, 413 where there is a body, 422 where there are inputs,
    and whatever the route declares itself (409, 410 ...)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                if isinstance(operation, dict) and "responses" in operation:
                    _declare_errors(operation)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas["ErrorBody"] = body
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _declare_errors(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation["responses"]
    parameters = operation.get("parameters", [])
    # Any route may meet a dependency that does not answer.
    statuses = {status for status in responses if status.startswith("4")} | {"503"}
    if operation.get("security"):
        statuses |= {"401", "403"}
    if any(parameter.get("in") == "path" for parameter in parameters):
        statuses.add("404")
    if "requestBody" in operation:
        statuses |= {"413", "422"}
    if parameters:
        statuses.add("422")
    # A page (or a download) answers its errors with pages (the sign-in form, a message).
    page = any(
        kind != "application/json"
        for status, response in responses.items()
        if status.startswith("2")
        for kind in response.get("content", {})
    )
    for status in sorted(statuses):
        declared = responses.setdefault(status, {})
        declared.setdefault("description", _ERROR_MEANINGS.get(status, "refused"))
        content = declared.setdefault("content", {})
        if status == "503" and content.get("application/json", {}).get("schema"):
            continue  # a body of its own (readiness names each dependency)
        content["application/json"] = {"schema": _ERROR_BODY}
        if page:
            content.setdefault("text/html", {})
