"""Fixtures more than one integration module uses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.intake import RunningIntake, running_intake
from tests.support.processes import Tansu, free_port
from tests.support.review import ReviewHarness, fresh_database, review_service


@pytest.fixture
def own_tansu() -> Iterator[Tansu]:
    """A broker of this test's own, so it can be stopped and restarted (empty)."""
    broker = Tansu(port=free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
async def review(tmp_path: Path) -> AsyncIterator[ReviewHarness]:
    """The review service in-process, on a fresh SQLite database of this test's own."""
    url, _ = await fresh_database("sqlite", tmp_path)
    async for running in review_service(url, tmp_path):
        yield running


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def svc(
    request: pytest.FixtureRequest,
    tansu: Tansu,
    postgres_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[RunningIntake]:
    """The intake service in-process, shared by a module's tests, on each database.

    A module that wants it on one database only defines its own ``svc``.
    """
    if request.param == "postgres":
        url = postgres_url
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('intake-db') / 'intake.db'}"
    async with running_intake(url, tansu.bootstrap, tmp_path_factory.mktemp("intake")) as running:
        yield running
