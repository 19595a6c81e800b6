"""Readiness reports which dependency is down, and the body limit holds for streamed bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request

from shared.http import BodySizeLimit, add_operational_routes


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
