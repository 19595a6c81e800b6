"""A partner city opens its emailed link in headless Chromium, confirms, and cannot answer twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser
from sqlalchemy import select

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.contracts.topics import PARTNER_CONFIRMED
from shared.migrations import upgrade
from tests.browser.pages import checked
from tests.support.browser import WithoutBroker, chromium, served
from tests.support.intake import RunningIntake, link_path, partner_request, ticking_clock

PARTNER_EMAIL = "twinning@nakuru.example.org"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def link_for_a_submitted_application(
    settings: IntakeSettings, clock: Callable[[], datetime]
) -> tuple[str, str, str]:
    """Submits an application over HTTP and requests the partner's confirmation, as the
    workflow would; returns the application id, the member's name and the link's path."""
    app = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as client:
        running = RunningIntake(
            app,
            client,
            settings,
            app.state.service,
            settings.database_url or "",
            "",
            settings.state_dir,
        )
        member_id = await running.new_member()
        rate = await client.put(
            "/v1/exchange-rates/KES/USD", json={"rate": "0.0077"}, headers=running.officer()
        )
        assert rate.status_code == 200, rate.text
        application_id = await running.submitted(
            member_id,
            title="Roanoke and Nakuru market traders",
            partner={
                "name": "Nakuru",
                "country": "KE",
                "contact_name": "Wanjiru Kamau",
                "contact_email": PARTNER_EMAIL,
            },
        )
        member = (await client.get(f"/v1/members/{member_id}", headers=running.officer())).json()
        command = partner_request(
            application_id,
            PARTNER_EMAIL,
            running.service.now() + timedelta(days=14),
            partner_city="Nakuru",
        )
        await running.handle(running.service.request_partner_confirmation, command)
        [mail] = await running.queued_mail(PARTNER_EMAIL)
    await app.state.runtime.engine.dispose()
    return application_id, str(member["name"]), link_path(mail.body)


async def partner_answers(settings: IntakeSettings, application_id: str) -> list[dict[str, object]]:
    app = create_app(settings)
    table = app.state.runtime.tables.outbox
    query = select(table.c.body).where(
        table.c.topic == PARTNER_CONFIRMED.qualified(settings.topic_prefix),
        table.c.message_key == application_id,
    )
    try:
        async with app.state.runtime.sessions() as session:
            return [json.loads(body)["payload"] for body in (await session.scalars(query)).all()]
    finally:
        await app.state.runtime.engine.dispose()


async def test_a_partner_confirms_with_a_note_and_a_colleagues_open_form_cannot_change_it(
    tmp_path: Path, browser: Browser
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    await asyncio.to_thread(upgrade, "intake", url)
    settings = IntakeSettings(environment="test", database_url=url, state_dir=tmp_path)
    clock = ticking_clock()
    application_id, member_name, path = await link_for_a_submitted_application(settings, clock)

    with served(WithoutBroker(create_app(settings, clock=clock))) as base:
        page, colleague = await browser.new_page(), await browser.new_page()
        await colleague.goto(base + path)  # a second person opens the same mail
        opened = await page.goto(base + path)
        assert opened is not None and opened.status == 200
        assert await page.locator("h1").inner_text() == f"Exchange with {member_name}"
        text = await page.locator("body").inner_text()
        assert "Roanoke and Nakuru market traders" in text
        assert "Does Nakuru take part in and host this exchange?" in text
        await checked(page, "partner-confirmation")

        await page.fill("#note", "Our chamber of commerce will host the delegation.")
        async with page.expect_response(lambda response: response.request.method == "POST") as sent:
            await page.click("button[value=confirm]")
        assert (await sent.value).status == 200
        assert await page.locator("h1").inner_text() == "Thank you"
        assert f"You confirmed the exchange with {member_name}" in await page.inner_text("body")

        # The colleague's page still shows the form; answering from it changes nothing.
        async with colleague.expect_response(
            lambda response: response.request.method == "POST"
        ) as sent:
            await colleague.click("button[value=decline]")
        assert (await sent.value).status == 409
        assert await colleague.locator("h1").inner_text() == "This link cannot be used"

        again = await page.goto(base + path)
        assert again is not None and again.status == 200
        assert f"You confirmed the exchange with {member_name}" in await page.inner_text("body")
        await page.close()
        await colleague.close()

    [answer] = await partner_answers(settings, application_id)
    assert answer["confirmed"] is True
    assert answer["note"] == "Our chamber of commerce will host the delegation."
