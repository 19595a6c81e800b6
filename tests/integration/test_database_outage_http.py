"""A database that does not answer is a 503 with Retry-After, never a 500; a fault stays 500.

Real PostgreSQL errors: a server that refuses the connection, and one that has no
connection left for the caller (SQLSTATE 53300, what "too many clients" answers).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.errors import install_error_handlers
from tests.support.databases import POSTGRES_ADMIN_DSN, postgres_admin


def _app(database_url: str) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    engine = create_async_engine(database_url, pool_size=1)

    @app.get("/count")
    async def count() -> int:
        async with engine.connect() as connection:
            return int((await connection.execute(text("SELECT 1"))).scalar_one())

    @app.get("/fault")
    async def fault() -> int:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1/0"))
        return 0

    return app


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


@pytest.fixture
async def role_without_connections() -> AsyncIterator[str]:
    role = f"grantflow_full_{uuid.uuid4().hex[:8]}"
    await postgres_admin(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')
    yield role
    await postgres_admin(f'DROP ROLE IF EXISTS "{role}"')


def _url(user: str, port: int | None = None) -> str:
    """The suite's server as ``user`` (on ``port``, where nothing listens, if given)."""
    server = urlsplit(POSTGRES_ADMIN_DSN)
    return f"postgresql+asyncpg://{user}@{server.hostname}:{port or server.port or 5432}/postgres"


async def test_a_database_out_of_connections_is_a_503_to_try_again(
    role_without_connections: str,
) -> None:
    answer = await _get(_app(_url(role_without_connections)), "/count")
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "2"
    assert "try again" in answer.json()["detail"]


async def test_a_database_refusing_connections_is_a_503() -> None:
    answer = await _get(_app(_url("postgres", port=1)), "/count")
    assert answer.status_code == 503, answer.text


async def test_a_database_that_answers_still_serves_and_a_fault_is_still_a_500() -> None:
    app = _app(_url("postgres"))
    assert (await _get(app, "/count")).json() == 1
    assert (await _get(app, "/fault")).status_code == 500
