"""What every HTTP service serves besides its own routes: health, readiness, metrics, limits."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import OFFICERS, require

ReadinessCheck = Callable[[], Awaitable[None]]

# Bounds of every list route's paging, the same everywhere (a larger offset overflowed the
# databases' integers and answered 500).
MAX_OFFSET = 1_000_000_000
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]


def limit_query(default: int = 100, most: int = 500) -> Any:
    """A ``limit`` query parameter: at least 1, at most ``most``."""
    return Query(default, ge=1, le=most, description=f"Items to return (at most {most}).")


# What a JSON body may hold before a parser is asked to build it.
MAX_JSON_DEPTH = 32
MAX_INTEGER_DIGITS = 20
MAX_NUMBER_CHARACTERS = 40


class JsonGuard:
    """Refuse input that no contract accepts but that costs a parser or a database dearly:
    JSON nested deeper than ``MAX_JSON_DEPTH``, numbers longer than any bound, infinities,
    and NUL characters anywhere (body, path, query: PostgreSQL cannot store one in text).
    Each is a 422 naming what is wrong, never a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nul = nul_problem(scope)
        if nul is not None:
            await _refused(nul, "string_nul")(scope, receive, send)
            return
        if not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = json_problem(body) if body else None
        if problem is not None:
            await _refused(("body", problem), "json_invalid")(scope, receive, send)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _refused(problem: tuple[str, str], kind: str) -> JSONResponse:
    where, message = problem
    loc = where.split(".")
    field = loc[-1] if len(loc) > 1 else where
    return JSONResponse(
        {"detail": [{"loc": loc, "field": field, "msg": message, "type": kind}]},
        status_code=422,
    )


def nul_problem(scope: Scope) -> tuple[str, str] | None:
    """Where a NUL character is in the request's path or query, and what is wrong."""
    if "\x00" in scope.get("path", ""):
        return "path", "the path may not contain NUL characters"
    query = scope.get("query_string", b"")
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            shown = name.replace("\x00", "")
            return f"query.{shown}", f"{shown} may not contain NUL characters"
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            return b"json" in value.lower()
    return False


class _RefusedNumberError(ValueError):
    pass


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _RefusedNumberError(
            f"a number with {len(text)} digits is larger than any field accepts"
        )
    return int(text)


def _number(text: str) -> float:
    value = float(text)
    if len(text) > MAX_NUMBER_CHARACTERS or not math.isfinite(value):
        raise _RefusedNumberError(f"the number {text[:20]}... is out of range")
    return value


def _constant(text: str) -> Any:
    raise _RefusedNumberError(f"{text} is not a number JSON allows")


def json_problem(body: bytes) -> str | None:
    """Why ``body`` must not be parsed, or None (malformed JSON is left to the parser)."""
    if b"\\u0000" in body or b"\x00" in body:
        return "text may not contain NUL characters"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8 text"
    try:
        parsed = json.loads(text, parse_int=_integer, parse_float=_number, parse_constant=_constant)
    except _RefusedNumberError as refused:
        return str(refused)
    except RecursionError:
        return f"the body is nested deeper than {MAX_JSON_DEPTH} levels"
    except ValueError:
        return None
    if _depth(parsed) > MAX_JSON_DEPTH:
        return f"the body is nested deeper than {MAX_JSON_DEPTH} levels"
    return None


def _depth(value: Any) -> int:
    deepest = 0
    level: list[tuple[Any, int]] = [(value, 1)]
    while level:
        item, depth = level.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            level += [(child, depth + 1) for child in item.values()]
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            level += [(child, depth + 1) for child in item]
    return deepest


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLargeError
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLargeError:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body is larger than {self.max_bytes} bytes"}, status_code=413
        )
        await response(scope, receive, send)


class _BodyTooLargeError(Exception):
    pass


class _RequestMetrics:
    """Counts requests and their latency per route.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` runs every request in an
    extra task group, which cost a measurable share of a small request's CPU time.
    """

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.requests.labels(method, route, str(status)).inc()
            self.latency.labels(method, route).observe(time.perf_counter() - started)


LabelledRead = tuple[str, str, Callable[[], Mapping[str, float]]]


class _RuntimeCollector:
    """Exposes counters that live on runtime objects (outbox relay, dead letters)."""

    def __init__(
        self,
        gauges: dict[str, tuple[str, Callable[[], float]]],
        counters: dict[str, tuple[str, Callable[[], float]]],
        labelled: dict[str, LabelledRead],
    ) -> None:
        self._gauges = gauges
        self._counters = counters
        self._labelled = labelled

    def collect(self) -> Iterable[Any]:
        for name, (documentation, read) in self._counters.items():
            counter = CounterMetricFamily(name, documentation)
            counter.add_metric([], read())
            yield counter
        for name, (documentation, label, read_all) in self._labelled.items():
            counter = CounterMetricFamily(name, documentation, labels=[label])
            for value, count in sorted(read_all().items()):
                counter.add_metric([value], count)
            yield counter
        for name, (documentation, read) in self._gauges.items():
            gauge = GaugeMetricFamily(name, documentation)
            gauge.add_metric([], read())
            yield gauge


class Readiness(BaseModel):
    """What readiness answers, 200 or 503: each dependency and whether it answers."""

    status: Literal["ready", "not ready"]
    service: str
    checks: dict[str, str] = Field(description='"ok", or "unavailable: " and why.')


def add_operational_routes(
    app: FastAPI,
    *,
    service: str,
    readiness_checks: dict[str, ReadinessCheck],
    counters: dict[str, tuple[str, Callable[[], float]]] | None = None,
    gauges: dict[str, tuple[str, Callable[[], float]]] | None = None,
    labelled_counters: dict[str, LabelledRead] | None = None,
) -> None:
    """``/healthz`` (the process answers), ``/readyz`` (its dependencies answer), ``/metrics``."""
    registry = CollectorRegistry()
    requests = Counter(
        "http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "http_request_duration_seconds",
        "HTTP request latency",
        ["method", "route"],
        registry=registry,
    )
    registry.register(_RuntimeCollector(gauges or {}, counters or {}, labelled_counters or {}))

    app.add_middleware(_RequestMetrics, requests=requests, latency=latency)

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Database and broker answer",
        response_model=Readiness,
        responses={503: {"description": "a dependency does not answer", "model": Readiness}},
    )
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in readiness_checks.items():
            try:
                await check()
                results[name] = "ok"
            except Exception as error:
                results[name] = f"unavailable: {type(error).__name__}: {error}"[:300]
        ready = all(value == "ok" for value in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "service": service, "checks": results},
            status_code=200 if ready else 503,
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics (a program officer's or an admin's token)",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
        dependencies=[Depends(require(*OFFICERS))],
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
