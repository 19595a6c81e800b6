"""The lifecycle suite runs twice: with the workflow cache, and with none (replay every task)."""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.support.workflows import register_search_attributes, with_pydantic
from tests.workflows.support import Lifecycle, StandInServices


@pytest.fixture(scope="module")
async def funding_client(time_skipping_env: WorkflowEnvironment) -> Client:
    """The time-skipping server's client with the pydantic converter and our search attributes.

    The test server refuses upserts of unknown search attributes, so they are registered
    here the way ``temporal server start-dev --search-attribute`` registers them.
    """
    await register_search_attributes(time_skipping_env.client)
    return with_pydantic(time_skipping_env.client)


@pytest.fixture(params=[1000, 0], ids=["cached", "replay-every-task"])
def max_cached_workflows(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def lifecycle(
    funding_client: Client,
    time_skipping_env: WorkflowEnvironment,
    max_cached_workflows: int,
    request: pytest.FixtureRequest,
) -> Lifecycle:
    """One lifecycle path, named (and its history recorded) after the test."""
    name = request.node.originalname.removeprefix("test_")
    return Lifecycle(funding_client, time_skipping_env, max_cached_workflows, name)


@pytest.fixture
def services(funding_client: Client) -> StandInServices:
    return StandInServices(funding_client)
