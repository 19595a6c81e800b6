"""A program officer works the /console pages in headless Chromium: from the attention
list to an application's story, a decision the lifecycle refuses, and one it takes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from shared.auth import Role, mint_token
from shared.contracts.envelope import new_envelope
from shared.contracts.workflows import EscalatedToOfficer
from shared.migrations import upgrade
from tests.browser.pages import checked, serving
from tests.support.browser import WithoutBroker, chromium
from tests.support.processes import TemporalDevServer
from tests.support.workflows import (
    register_search_attributes,
    start_stuck_lifecycles,
    submission,
    with_pydantic,
)
from tests.workflows.support import StandInServices, funding_worker, reach, start_lifecycle
from workflows.attention.service import AttentionService
from workflows.funding.models import Stage
from workflows.funding.worker import connect_temporal, create_app
from workflows.settings import WorkflowsSettings


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def funding_client(time_skipping_env: WorkflowEnvironment) -> Client:
    await register_search_attributes(time_skipping_env.client)
    return with_pydantic(time_skipping_env.client)


async def console(tmp_path: Path, client: Client) -> tuple[WorkflowsSettings, WithoutBroker]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'workflows.db'}"
    await asyncio.to_thread(upgrade, "workflows", url)
    settings = WorkflowsSettings(environment="test", database_url=url, state_dir=tmp_path)
    app = create_app(settings)

    async def connect(app: object) -> None:
        app.state.temporal = client  # type: ignore[attr-defined]

    return settings, WithoutBroker(app, [connect])


async def escalate(app: WithoutBroker, application_id: str) -> None:
    attention: AttentionService = app.app.state.service
    escalation = EscalatedToOfficer(
        application_id=application_id,
        stage="partner_unconfirmed",
        reason="Kisumu did not answer the confirmation link within 14 days",
        kind="partner_unconfirmed",
        sequence=4,
        program_code="AUPAP",
    )
    async with attention.work() as work:
        envelope = new_envelope(escalation, producer="workflows", application_id=application_id)
        await attention.escalated(work, envelope)


async def sign_in(page: Page, base: str, token: str) -> None:
    await page.goto(f"{base}/console")
    await page.fill("#token", f"Bearer {token}")
    await page.click("#sign-in")


async def test_an_officer_goes_from_the_attention_list_to_a_decision(
    tmp_path: Path, browser: Browser, funding_client: Client, time_skipping_env: WorkflowEnvironment
) -> None:
    settings, app = await console(tmp_path, funding_client)
    services = StandInServices(funding_client, partner="never")
    today = (await time_skipping_env.get_current_time()).date()
    application = submission(today=today)
    app_id = application.application_id
    page = await browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    async with funding_worker(funding_client, services) as queue, serving(app) as base:
        handle = await start_lifecycle(funding_client, queue, application)
        try:
            await walk_the_console(page, base, settings, app, app_id, handle, time_skipping_env)
        finally:
            # A lifecycle left running without its worker would stop the shared
            # time-skipping server from skipping time for every later test.
            await handle.terminate("test over")
    assert all(url.startswith(base) for url in requested), "the page loaded a foreign asset"


async def walk_the_console(
    page: Page,
    base: str,
    settings: WorkflowsSettings,
    app: WithoutBroker,
    app_id: str,
    handle: WorkflowHandle[Any, Any],
    time_skipping_env: WorkflowEnvironment,
) -> None:
    await reach(handle, Stage.PARTNER_CONFIRMATION)
    await time_skipping_env.sleep(timedelta(days=15))  # past the partner's deadline
    await reach(handle, Stage.PARTNER_UNCONFIRMED)
    await escalate(app, app_id)

    await sign_in(page, base, mint_token(settings, role=Role.PROGRAM_OFFICER))
    row = page.locator(f"#attention tr[data-application-id='{app_id}']")
    assert "the partner city never confirmed" in await row.inner_text()
    await checked(page, "console-attention")

    await row.locator("a").click()
    assert await page.inner_text("#stage") == "partner_unconfirmed"
    assert await page.inner_text("#partners") == "Kisumu (KE, no answer yet)"
    assert "10,000.00 USD" in await page.inner_text("#money")
    assert "partner_unconfirmed" in await page.inner_text("#history")
    await checked(page, "console-application")

    # A decision that does not fit the stage: confirmed, then refused with the reason.
    await page.select_option("#override-outcome", "awarded")
    await page.fill("#override-reason", "the committee asked for it")
    await page.click("#override")
    assert "Override the decision: award." in await page.inner_text("#confirm-words")
    await checked(page, "console-confirm")
    await page.click("#confirm")
    assert "can be overridden only during review" in await page.inner_text(".flash.error")

    # A decision without its reason comes back with the sentence at the field.
    await page.click("#partner-decide")
    assert "reason" in (await page.inner_text("#partner-reason-error")).lower()
    assert await page.get_attribute("#partner-reason", "aria-invalid") == "true"
    await page.fill("#partner-reason", "the mayor confirmed by phone")
    await page.click("#partner-decide")
    assert "Review the application without" in await page.inner_text("#confirm-words")
    await page.click("#confirm")
    flash = await page.inner_text(".flash.ok")
    assert flash == "Done: the application proceeds to review."
    assert await page.inner_text("#stage") != "partner_unconfirmed"

    await page.click("text=Attention list")
    await page.fill("#go-to", f" {app_id} ")
    await page.click("#go")
    assert await page.inner_text("h1") == f"Application {app_id}"

    await page.click("#sign-out")
    await page.wait_for_selector("#token")


async def test_only_officers_sign_in_to_the_console(
    tmp_path: Path, browser: Browser, funding_client: Client
) -> None:
    settings, app = await console(tmp_path, funding_client)
    page = await browser.new_page()
    async with serving(app) as base:
        reviewer = mint_token(settings, role=Role.REVIEWER, reviewer_id="demo-reviewer-1")
        await page.goto(f"{base}/console")
        await page.fill("#token", reviewer)
        async with page.expect_response(f"{base}/console/sign-in") as answer:
            await page.click("#sign-in")
        assert (await answer.value).status == 403
        assert "for program officers" in await page.inner_text(".flash.error")
        await checked(page, "console-sign-in")
        # Without the cookie, a forged form is refused and changes nothing.
        forged = await page.request.post(
            f"{base}/console/applications/app-1/withdraw",
            form={"reason": "forged", "confirmed": "yes", "csrf": "guess"},
        )
        assert forged.status == 401


async def test_an_officer_finds_the_applications_stuck_in_a_stage(
    tmp_path: Path, browser: Browser, temporal_dev_server: TemporalDevServer
) -> None:
    """On a real Temporal server: its visibility store answers the stuck list's query."""
    client = await connect_temporal(
        WorkflowsSettings(environment="test", temporal_address=temporal_dev_server.address)
    )
    settings, app = await console(tmp_path, client)
    program = f"P{uuid.uuid4().hex[:10]}"
    handles = await start_stuck_lifecycles(client, program, 2)
    page = await browser.new_page()
    try:
        async with serving(app) as base:
            await sign_in(page, base, mint_token(settings, role=Role.PROGRAM_OFFICER))
            assert await page.locator("#attention-empty").count() == 1
            stuck = page.locator("#stuck tbody tr")
            for _ in range(50):  # visibility catches up within a second or two
                await page.select_option("#stage", "review")
                await page.fill("#days", "5")
                await page.fill("#program", program)
                await page.click("#find-stuck")
                if await stuck.count() == 2:
                    break
                await asyncio.sleep(0.2)
            found = sorted(await stuck.locator("td:first-child").all_inner_texts())
            assert found == [f"{program}-0", f"{program}-1"]
            await checked(page)
            await page.fill("#days", "8")  # none has been there that long
            await page.click("#find-stuck")
            assert "that long" in await page.inner_text("#stuck-empty")
    finally:
        for handle in handles:
            await handle.terminate("test over")
