"""The officers' list of lifecycles stuck in a stage comes in pages, read from Temporal's
visibility store as the lifecycle API reads it (no offset there: the API skips)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from tests.edges.apps import InProcess, build
from tests.support.processes import TemporalDevServer
from tests.support.workflows import start_stuck_lifecycles

STUCK = 5


@pytest.fixture(scope="module")
async def workflows(
    tmp_path_factory: pytest.TempPathFactory, temporal_dev_server: TemporalDevServer
) -> AsyncIterator[tuple[InProcess, httpx.AsyncClient]]:
    state: Path = tmp_path_factory.mktemp("lifecycle-paging")
    app = await asyncio.to_thread(
        build, "workflows", state, temporal_address=temporal_dev_server.address
    )
    for step in app.startup:
        await step(app.app)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app.app), base_url="http://t"
    ) as client:
        yield app, client
    await app.app.state.runtime.engine.dispose()


async def test_the_stuck_list_comes_in_pages_that_add_up_to_the_whole(
    workflows: tuple[InProcess, httpx.AsyncClient],
) -> None:
    app, client = workflows
    temporal: Client = app.app.state.temporal
    program = f"P{uuid.uuid4().hex[:10]}"
    handles = await start_stuck_lifecycles(temporal, program, STUCK)
    officer = app.headers("officer")
    query = {"program": program, "stage": "review", "stuck_for_days": 1}
    try:
        whole: list[str] = []
        for _ in range(100):  # visibility catches up within a second or two
            answer = await client.get("/v1/lifecycle", params=query, headers=officer)
            assert answer.status_code == 200, answer.text
            whole = [item["application_id"] for item in answer.json()["applications"]]
            if len(whole) == STUCK:
                break
            await asyncio.sleep(0.2)
        assert sorted(whole) == sorted(f"{program}-{number}" for number in range(STUCK))
        pages = []
        for offset in (0, 2, 4, 6):
            answer = await client.get(
                "/v1/lifecycle", params={**query, "limit": 2, "offset": offset}, headers=officer
            )
            page = answer.json()
            assert (page["limit"], page["offset"]) == (2, offset)
            pages.append([item["application_id"] for item in page["applications"]])
        assert pages == [whole[0:2], whole[2:4], whole[4:], []]
        refused = await client.get("/v1/lifecycle", params={**query, "offset": -1}, headers=officer)
        assert refused.status_code == 422
    finally:
        for handle in handles:
            await handle.terminate("test over")
