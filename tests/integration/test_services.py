"""Every service migrates its own tables and serves health, readiness and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import import_module
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import inspect

from grantflow.services import SETTINGS_BY_SERVICE
from shared.auth import Role, mint_token
from shared.db import create_engine
from shared.migrations import MIGRATED_SERVICES, upgrade
from tests.support.messaging import on_test_broker
from tests.support.processes import Tansu, TemporalDevServer, migrated_sqlite
from workflows.settings import WorkflowsSettings


async def table_names(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def test_each_service_migrates_only_its_own_tables(database_url: str) -> None:
    for service in MIGRATED_SERVICES:
        before = await table_names(database_url)
        await asyncio.to_thread(upgrade, service, database_url)
        added = await table_names(database_url) - before
        assert all(name.startswith((service, f"alembic_version_{service}")) for name in added)
    tables = await table_names(database_url)
    for service in MIGRATED_SERVICES:
        assert {f"{service}_outbox", f"{service}_inbox"} <= tables
    # A second upgrade is a no-op.
    await asyncio.to_thread(upgrade, "intake", database_url)
    assert await table_names(database_url) == tables


@pytest.fixture(params=["intake", "review", "disbursement", "reporting"])
async def running_service(
    request: pytest.FixtureRequest, database_url: str, tansu: Tansu, unique: str
) -> AsyncIterator[httpx.AsyncClient]:
    service = request.param
    await asyncio.to_thread(upgrade, service, database_url)
    settings = SETTINGS_BY_SERVICE[service](
        database_url=database_url, **on_test_broker(tansu.bootstrap, f"{unique}.")
    )
    app: FastAPI = import_module(f"services.{service}.app").create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


async def test_service_answers_health_readiness_and_metrics(
    running_service: httpx.AsyncClient,
) -> None:
    assert (await running_service.get("/healthz")).json()["status"] == "ok"
    ready = await running_service.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    assert (await running_service.get("/metrics")).status_code == 401
    officer = mint_token(SETTINGS_BY_SERVICE["intake"](), role=Role.PROGRAM_OFFICER)
    metrics = (
        await running_service.get("/metrics", headers={"Authorization": f"Bearer {officer}"})
    ).text
    assert "outbox_published_total" in metrics
    assert 'http_requests_total{method="GET",route="/readyz",status="200"}' in metrics


async def test_a_body_over_the_limit_is_refused_with_413(
    running_service: httpx.AsyncClient,
) -> None:
    response = await running_service.post("/healthz", content=b"x" * (256 * 1024 + 1))
    assert response.status_code == 413
    assert "larger than 262144 bytes" in response.json()["detail"]


async def test_workflows_process_is_ready_when_temporal_and_kafka_answer(
    temporal_dev_server: TemporalDevServer, tansu: Tansu, unique: str, tmp_path: Path
) -> None:
    from workflows.funding.worker import create_app

    settings = WorkflowsSettings(
        kafka_bootstrap_servers=tansu.bootstrap,
        temporal_address=temporal_dev_server.address,
        topic_prefix=f"{unique}.",
        database_url=await migrated_sqlite(tmp_path, "workflows"),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://w") as client:
            ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {
        "temporal": "ok",
        "worker": "ok",
        "database": "ok",
        "broker": "ok",
    }
