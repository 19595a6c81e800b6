"""The officers' lifecycle API against a running lifecycle on the time-skipping server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from shared.auth import Role, mint_token
from tests.support.workflows import submission
from tests.workflows.support import StandInServices, funding_worker, reach, start_lifecycle
from workflows.funding.models import Stage
from workflows.funding.worker import create_app
from workflows.settings import WorkflowsSettings

SETTINGS = WorkflowsSettings(environment="test")
OFFICER = {"Authorization": f"Bearer {mint_token(SETTINGS, role=Role.PROGRAM_OFFICER)}"}


@pytest.fixture
async def api(funding_client: Client) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SETTINGS)
    app.state.temporal = funding_client  # the lifespan would connect; the server is ours here
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://workflows") as client:
        yield client


async def test_officer_decides_an_unconfirmed_partner_and_bad_actions_are_refused(
    api: httpx.AsyncClient, funding_client: Client, time_skipping_env: WorkflowEnvironment
) -> None:
    services = StandInServices(funding_client, partner="never")
    today = (await time_skipping_env.get_current_time()).date()
    application = submission(today=today)
    app_id = application.application_id
    base = f"/v1/lifecycle/{app_id}"
    async with funding_worker(funding_client, services) as queue:
        handle = await start_lifecycle(funding_client, queue, application)
        await reach(handle, Stage.PARTNER_CONFIRMATION)
        await time_skipping_env.sleep(timedelta(days=15))  # past the partner's deadline
        await reach(handle, Stage.PARTNER_UNCONFIRMED)

        view = await api.get(base, headers=OFFICER)
        assert view.status_code == 200
        body = view.json()
        assert body["stage"] == "partner_unconfirmed"
        assert [t["stage"] for t in body["history"]][-1] == "partner_unconfirmed"
        assert body["amounts"]["requested"] == {"amount_minor": 1_000_000, "currency": "USD"}

        override = await api.post(
            f"{base}/override", json={"outcome": "awarded", "reason": "x"}, headers=OFFICER
        )
        assert override.status_code == 409
        assert "can be overridden only during review" in override.json()["detail"]
        resend = await api.post(f"{base}/resend", json={}, headers=OFFICER)
        assert resend.status_code == 409
        assert "no command is waiting for an answer" in resend.json()["detail"]
        unknown = await api.post(f"{base}/amendments/am-9/approve", json={}, headers=OFFICER)
        assert unknown.status_code == 409
        assert unknown.json()["detail"] == "no amendment am-9 was requested"
        invalid = await api.post(
            f"{base}/partner-decision", json={"proceed": True, "extra": 1}, headers=OFFICER
        )
        assert invalid.status_code == 422

        decided = await api.post(
            f"{base}/partner-decision",
            json={"proceed": True, "reason": "the mayor confirmed by phone"},
            headers=OFFICER,
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["message"] == "the application proceeds to review"

        final = await asyncio.wait_for(handle.result(), timeout=30)
        assert final.stage is Stage.CLOSED
        late = await api.post(f"{base}/withdraw", json={"reason": "too late"}, headers=OFFICER)
        assert late.status_code == 409
        assert late.json()["detail"] == "the lifecycle has ended"
        closed = await api.get(base, headers=OFFICER)
        assert closed.json()["stage"] == "closed"
        assert closed.json()["finished"] is True


async def test_only_officers_reach_the_lifecycle_api(api: httpx.AsyncClient) -> None:
    applicant = mint_token(SETTINGS, role=Role.APPLICANT, member_id="demo-member-1")
    assert (await api.get("/v1/lifecycle/app-1")).status_code == 401
    forbidden = await api.get(
        "/v1/lifecycle/app-1", headers={"Authorization": f"Bearer {applicant}"}
    )
    assert forbidden.status_code == 403
    missing = await api.get("/v1/lifecycle/app-never-submitted", headers=OFFICER)
    assert missing.status_code == 404


async def test_the_lifecycle_is_read_while_no_worker_runs(
    api: httpx.AsyncClient, funding_client: Client, time_skipping_env: WorkflowEnvironment
) -> None:
    """The view comes from the workflow's memo on the server: no worker has to answer (a
    query would wait for one, and a cold worker answering queries could corrupt history)."""
    services = StandInServices(funding_client, partner="never")
    today = (await time_skipping_env.get_current_time()).date()
    application = submission(today=today)
    async with funding_worker(funding_client, services) as queue:
        handle = await start_lifecycle(funding_client, queue, application)
        await reach(handle, Stage.PARTNER_CONFIRMATION)
    # The worker has stopped; the lifecycle waits for its partner.
    view = await api.get(f"/v1/lifecycle/{application.application_id}", headers=OFFICER)
    assert view.status_code == 200, view.text
    assert view.json()["stage"] == "partner_confirmation"
    assert view.json()["partners"][0]["confirmed"] is None
    await handle.terminate("test over")
