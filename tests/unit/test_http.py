"""Readiness names the dependency that is down; body limits and the JSON guard hold."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from shared.http import BodySizeLimit, JsonGuard, add_operational_routes


async def test_readiness_names_the_dependency_that_does_not_answer() -> None:
    async def database() -> None:
        return None

    async def broker() -> None:
        raise ConnectionError("Kafka broker does not answer")

    app = FastAPI()
    add_operational_routes(
        app, service="intake", readiness_checks={"database": database, "broker": broker}
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "ok"
    assert "Kafka broker does not answer" in response.json()["checks"]["broker"]


async def test_a_streamed_body_without_length_is_cut_at_the_limit() -> None:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    app.add_middleware(BodySizeLimit, max_bytes=1000)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 300

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.post("/echo", content=b"z" * 999)).json() == {"size": 999}
        response = await client.post("/echo", content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"a": ' * 40 + b"1" + b"}" * 40, "nested deeper than 32 levels"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 32 levels"),
        (b'{"amount_minor": ' + b"9" * 5000 + b"}", "5000 digits"),
        (b'{"rate": 1E+999999}', "out of range"),
        (b'{"rate": NaN}', "NaN is not a number JSON allows"),
        (b'{"name": "nul \\u0000 inside"}', "NUL characters"),
    ],
)
def test_json_no_contract_accepts_is_a_422_naming_the_problem(body: bytes, problem: str) -> None:
    app = FastAPI()

    @app.post("/echo")
    async def echo(value: dict[str, Any]) -> dict[str, Any]:
        return value

    app.add_middleware(JsonGuard)
    response = TestClient(app).post(
        "/echo", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert problem in response.json()["detail"][0]["msg"]


def test_ordinary_json_passes_the_guard_untouched() -> None:
    app = FastAPI()

    @app.post("/echo")
    async def echo(value: dict[str, Any]) -> dict[str, Any]:
        return value

    app.add_middleware(JsonGuard)
    body = {"amount_minor": 12_345, "nested": [{"a": [1, 2.5, None, "text"]}]}
    response = TestClient(app).post("/echo", json=body)
    assert response.status_code == 200
    assert response.json() == body
