"""A member city works the /portal pages in headless Chromium: from an empty draft,
through the checks, to a submitted application, its timeline, and a withdrawal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.auth import Role, mint_token
from shared.migrations import upgrade
from tests.browser.pages import checked, serving
from tests.support.browser import WithoutBroker, chromium
from tests.support.intake import RunningIntake, ticking_clock


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def portal(tmp_path: Path) -> tuple[IntakeSettings, str, WithoutBroker]:
    """Intake with a member city in good standing and the KES rate; the member's id."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    await asyncio.to_thread(upgrade, "intake", url)
    settings = IntakeSettings(environment="test", database_url=url, state_dir=tmp_path)
    clock = ticking_clock()
    app = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as client:
        running = RunningIntake(app, client, settings, app.state.service, url, "", tmp_path)
        member_id = await running.new_member()
        rate = await client.put(
            "/v1/exchange-rates/KES/USD", json={"rate": "0.0077"}, headers=running.officer()
        )
        assert rate.status_code == 200, rate.text
    await app.state.runtime.engine.dispose()
    return settings, member_id, WithoutBroker(create_app(settings, clock=clock))


async def value(page: Page, selector: str) -> str:
    return await page.input_value(selector)


async def test_an_applicant_goes_from_an_empty_draft_to_a_submitted_application(
    tmp_path: Path, browser: Browser
) -> None:
    settings, member_id, app = await portal(tmp_path)
    page = await browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    async with serving(app) as base:
        await page.goto(f"{base}/portal")
        await page.fill("#token", mint_token(settings, role=Role.APPLICANT, member_id=member_id))
        await page.click("#sign-in")
        assert "No application yet" in await page.inner_text("#applications-empty")
        await checked(page, "portal-home")

        await page.click("#new-application")
        assert await page.inner_text("#status") == "draft"
        await checked(page)

        # Typed with two mistakes: nothing is saved, everything typed comes back.
        await page.select_option("#program_code", "AUPAP")
        await page.select_option("#focus_area", "community_development")
        await page.fill("#title", "Clean water kiosks with Nairobi")
        # Markup typed by anyone comes back as text, never as markup.
        summary = "Utilities exchange staff. <script>alert('x')</script><b>three</b> kiosks"
        await page.fill("#summary", summary)
        await page.fill("#objectives", "Plan three water kiosks and a maintenance cooperative.")
        await page.fill("#exchange_start", "2027-05-10")
        await page.fill("#exchange_end", "2027-05-24")
        await page.fill("#partner-name", "Nairobi")
        await page.fill("#partner-country", "Kenya")
        await page.fill("#partner-contact-name", "Wanjiru Kamau")
        await page.fill("#partner-contact-email", "partnerships@nairobi.example.org")
        await page.fill("#delegation-adults", "6")
        await page.select_option("#line-0-category", "travel")
        await page.fill("#line-0-description", "Flights DEN-NBO")
        await page.fill("#line-0-amount", "12,000.005")
        await page.click("#save")
        assert "not saved" in await page.inner_text(".flash.error")
        assert "at most 2 decimals" in await page.inner_text("#line-0-amount-error")
        assert await page.get_attribute("#line-0-amount", "aria-invalid") == "true"
        assert await value(page, "#title") == "Clean water kiosks with Nairobi"
        assert await value(page, "#line-0-amount") == "12,000.005"
        assert await value(page, "#summary") == summary
        assert await page.locator("main script, main b").count() == 0
        await page.fill("#line-0-amount", "12000")
        await page.click("#save")
        country = await page.inner_text("#partner-country-error")
        assert country == "The partner's country must be a two-letter country code such as KE."
        await page.fill("#partner-country", "KE")

        # Saved, the submission checks show beside the fields they concern.
        await page.select_option("#line-1-category", "accommodation")
        await page.fill("#line-1-description", "Guest house, 14 nights")
        await page.fill("#line-1-amount", "400000")
        await page.select_option("#line-1-currency", "KES")
        await page.fill("#requested", "12000")
        await page.fill("#matching_cash", "3080")
        await page.fill("#matching_in_kind", "1000")
        await page.fill("#contact-0-name", "Ana Ruiz")
        await page.fill("#contact-0-email", "ana.ruiz@denver.example.org")
        await page.click("#save")
        assert await page.inner_text(".flash.ok") == "Draft saved."
        assert "11,000.00 USD" in await page.inner_text("#requested-error")
        assert await value(page, "#line-1-amount") == "400000.00"
        assert await value(page, "#line-1-currency") == "KES"
        await checked(page, "portal-draft")

        await page.fill("#requested", "11000")
        await page.click("#save")
        assert "Every check passes" in await page.inner_text("#ready")
        await page.click("#submit")
        assert await page.inner_text("#status") == "submitted"
        assert "Application submitted" in await page.inner_text(".flash.ok")
        assert "11,000.00 USD" in await page.inner_text("#requested")
        assert "submitted" in await page.inner_text("#timeline")

        # The workflow's news arrives: the timeline shows it, with the deadline ahead.
        application_id = page.url.split("/portal/applications/")[1].split("?")[0]
        running = RunningIntake(
            app.app, httpx.AsyncClient(), settings, app.app.state.service, "", "", tmp_path
        )
        due = datetime(2026, 12, 11, 12, 0, tzinfo=UTC)
        await running.feed_status(
            application_id,
            "partner_confirmation",
            1,
            previous="submitted",
            deadlines={"partner confirmation": due},
        )
        await page.reload()
        assert await page.inner_text("#status") == "partner_confirmation"
        assert "partner confirmation: 2026-12-11 12:00 UTC" in await page.inner_text("#deadlines")
        assert "partner confirmation" in await page.inner_text("#timeline")
        await checked(page, "portal-status")

        # An amendment is for awarded exchanges: refused now, with the service's reason.
        moved = "The hosts moved the water forum by four weeks."
        await page.fill("#amend-reason", moved)
        await page.fill("#new-exchange-start", "2027-06-07")
        await page.click("#amend")
        assert "cannot be done now" in await page.inner_text(".flash.error")
        assert await value(page, "#amend-reason") == moved

        # Awarded, the same request goes to a program officer.
        await running.feed_status(
            application_id, "awaiting_exchange", 2, previous="partner_confirmation", awarded=11_000
        )
        await page.reload()
        await page.fill("#new-exchange-start", "2027-06-07")
        await page.fill("#new-exchange-end", "2027-06-21")
        await page.fill("#amend-reason", moved)
        await page.click("#amend")
        assert "Amendment requested" in await page.inner_text(".flash.ok")
        assert "amendment requested" in await page.inner_text("#timeline")

        await page.click("#withdraw")
        assert await page.locator("#withdraw-reason-error").count() == 1
        await page.fill("#withdraw-reason", "The delegation cannot travel this year.")
        await page.click("#withdraw")
        assert "Withdrawal requested" in await page.inner_text(".flash.ok")

        await page.click("text=My applications")
        row = page.locator("#applications tbody tr")
        assert await row.count() == 1
        assert "Clean water kiosks with Nairobi" in await row.inner_text()
    assert all(url.startswith(base) for url in requested), "the page loaded a foreign asset"


async def test_the_portal_lets_in_applicants_only_and_checks_every_form(
    tmp_path: Path, browser: Browser
) -> None:
    settings, member_id, app = await portal(tmp_path)
    page = await browser.new_page()
    async with serving(app) as base:
        await page.goto(f"{base}/portal")
        await page.fill("#token", mint_token(settings, role=Role.PROGRAM_OFFICER))
        async with page.expect_response(f"{base}/portal/sign-in") as answer:
            await page.click("#sign-in")
        assert (await answer.value).status == 403
        assert "for member cities" in await page.inner_text(".flash.error")
        await checked(page, "portal-sign-in")
        forged = await page.request.post(f"{base}/portal/applications", form={"csrf": "guess"})
        assert forged.status == 401

        # Signed in, a form without the page's CSRF value (another site's) changes nothing.
        await page.fill("#token", mint_token(settings, role=Role.APPLICANT, member_id=member_id))
        await page.click("#sign-in")
        csrf = await page.get_attribute("input[name=csrf]", "value")
        assert csrf
        forged = await page.request.post(f"{base}/portal/applications", form={"csrf": "guess"})
        assert forged.status == 403
        assert "The form expired" in await forged.text()
        await page.goto(f"{base}/portal")
        assert await page.locator("#token").count() == 1  # and the token was forgotten
        await page.fill("#token", mint_token(settings, role=Role.APPLICANT, member_id=member_id))
        await page.click("#sign-in")
        assert await page.locator("#applications-empty").count() == 1
