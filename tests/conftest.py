"""Session-wide real infrastructure: Tansu, PostgreSQL, SQLite and Temporal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
    postgres_database_url,
)
from tests.support.processes import Tansu, TemporalDevServer, free_port, venv_binary
from workflows.funding.search_attributes import SEARCH_ATTRIBUTES


@pytest.fixture(scope="session")
def tansu() -> Iterator[Tansu]:
    broker = Tansu(port=free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = asyncio.run(create_postgres_database())
    yield postgres_database_url(name)
    asyncio.run(drop_postgres_database(name))


@pytest.fixture(scope="session")
def sqlite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sqlite")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, sqlite_dir: Path) -> str:
    """Every persistence test runs on both databases."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite+aiosqlite:///{sqlite_dir / f'{uuid.uuid4().hex[:8]}.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def isolated_database_url(request: pytest.FixtureRequest, sqlite_dir: Path) -> Iterator[str]:
    """A database of the test's own, for tests whose use cases scan whole tables."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{sqlite_dir / f'{uuid.uuid4().hex[:8]}.db'}"
        return
    name = asyncio.run(create_postgres_database())
    yield postgres_database_url(name)
    asyncio.run(drop_postgres_database(name))


@pytest.fixture
def unique() -> str:
    """A short unique name for topics, groups and tables, so tests cannot see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server per test module.

    Its clock only runs forward, and whatever a module leaves behind on it (lifecycles
    that wait for an officer for years, time skipping held by a lifecycle whose worker
    stopped) would hold later modules' lifecycles at their first timer.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_binary("temporal-test-server")
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(
        port=free_port(),
        ui_port=free_port(),
        db_file=tmp_path_factory.mktemp("temporal") / "temporal.db",
    )
    server.start(SEARCH_ATTRIBUTES)
    yield server
    server.stop()
