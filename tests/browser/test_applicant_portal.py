"""A member city works the /portal pages in headless Chromium: from an empty draft,
through the checks, to a submitted application, its timeline, its post-exchange report
(through reporting's real HTTP API), and a withdrawal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from services.reporting.app import create_app as create_reporting_app
from services.reporting.settings import ReportingSettings
from shared.auth import Role, mint_token
from shared.migrations import upgrade
from tests.browser.pages import checked, serving
from tests.support.browser import WithoutBroker, chromium
from tests.support.intake import RunningIntake, ticking_clock
from tests.support.reporting import at, budget_line, consumer_of, report_requested

# Reporting's today: after the exchange, so the activities reported were held.
REPORTING_NOW = datetime(2027, 6, 30, 9, 0, tzinfo=UTC)
NOWHERE = "http://127.0.0.1:9"  # no reporting: the pages that need none must not call it


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def portal(
    tmp_path: Path, reporting_url: str = NOWHERE
) -> tuple[IntakeSettings, str, WithoutBroker]:
    """Intake with a member city in good standing and the KES rate; the member's id."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    await asyncio.to_thread(upgrade, "intake", url)
    settings = IntakeSettings(
        environment="test", database_url=url, state_dir=tmp_path, reporting_url=reporting_url
    )
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


@contextlib.asynccontextmanager
async def reporting(tmp_path: Path) -> AsyncIterator[tuple[str, ReportingSettings]]:
    """The reporting service, served over HTTP as the portal reaches it; its base URL."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"
    await asyncio.to_thread(upgrade, "reporting", url)
    settings = ReportingSettings(environment="test", database_url=url)
    app = create_reporting_app(settings, clock=lambda: REPORTING_NOW)
    async with serving(WithoutBroker(app)) as base:
        yield base, settings


async def request_report(
    settings: ReportingSettings, application_id: str, report_id: str, member_id: str
) -> None:
    """The lifecycle asks for the report: its command, through reporting's own consumer."""
    app = create_reporting_app(settings, clock=lambda: REPORTING_NOW)
    budget = [
        budget_line("USD", 1_200_000, 1_200_000, "travel"),
        budget_line("KES", 40_000_000, 308_000, "accommodation"),
    ]
    try:
        async with consumer_of(app) as consume:
            await consume(
                report_requested(
                    application_id,
                    report_id,
                    when=at("2027-06-22"),
                    member_id=member_id,
                    due_on=date(2027, 7, 21),
                    awarded=1_100_000,
                    budget=budget,
                )
            )
    finally:
        await app.state.runtime.engine.dispose()


async def value(page: Page, selector: str) -> str:
    return await page.input_value(selector)


async def test_an_applicant_goes_from_an_empty_draft_to_a_submitted_application_and_report(
    tmp_path: Path, browser: Browser
) -> None:
    page = await browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    async with reporting(tmp_path) as (reporting_base, reporting_settings):
        settings, member_id, app = await portal(tmp_path, reporting_base)
        async with serving(app) as base:
            await walk(page, base, settings, member_id, app, tmp_path, reporting_settings)
        token = mint_token(settings, role=Role.APPLICANT, member_id=member_id)
        async with httpx.AsyncClient(base_url=reporting_base) as client:
            stored = await client.get(
                "/v1/reports/R-1", headers={"Authorization": f"Bearer {token}"}
            )
        # What the form sent is what reporting holds: submitted, in the award currency.
        assert stored.json()["state"] == "submitted", stored.text
        assert stored.json()["actual_spending"] == {"amount_minor": 1_442_600, "currency": "USD"}
        assert stored.json()["submitted"]["participants"] == {"adults": 6, "youth": 4}
    assert all(url.startswith(base) for url in requested), "the page loaded a foreign asset"


async def walk(
    page: Page,
    base: str,
    settings: IntakeSettings,
    member_id: str,
    app: WithoutBroker,
    tmp_path: Path,
    reporting_settings: ReportingSettings,
) -> None:
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

    # A second partner city, given the first one's contact by mistake: named at its field.
    await page.fill("#partner-2-name", "Kisumu")
    await page.fill("#partner-2-country", "KE")
    await page.fill("#partner-2-contact-name", "Achieng Otieno")
    await page.fill("#partner-2-contact-email", "partnerships@nairobi.example.org")
    await page.fill("#requested", "11000")
    await page.click("#save")
    assert "its own contact e-mail" in await page.inner_text("#partner-2-contact-email-error")
    await page.fill("#partner-2-contact-email", "twinning@kisumu.example.org")
    await page.click("#save")
    assert "Every check passes" in await page.inner_text("#ready")
    assert await value(page, "#partner-2-name") == "Kisumu"
    await page.click("#submit")
    assert await page.inner_text("#status") == "submitted"
    assert "Application submitted" in await page.inner_text(".flash.ok")
    assert "11,000.00 USD" in await page.inner_text("#requested")
    partners = await page.inner_text("#partners")
    assert "Nairobi (KE)" in partners and "Kisumu (KE), Achieng Otieno" in partners
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

    # After the exchange the lifecycle asks for the report: the page says so before
    # reporting has the request, and opens the form once it has.
    await running.feed_status(
        application_id,
        "report_due",
        3,
        previous="awaiting_exchange",
        deadlines={"report": datetime(2027, 7, 21, 12, 0, tzinfo=UTC)},
    )
    await page.reload()
    assert "as soon as the reporting service has the request" in await page.inner_text("#no-report")
    await request_report(reporting_settings, application_id, "R-1", member_id)
    await page.reload()
    assert "requested" in await page.inner_text("#reports")
    await checked(page)
    await page.click("text=Write the report")
    assert await page.inner_text("#report-state") == "requested"
    assert "2027-07-21" in await page.inner_text("#report-due")
    await checked(page)

    # Reporting refuses a negative count (422): its sentence shows at the field, and
    # nothing typed is lost.
    await page.fill("#participants-adults", "-2")
    await page.fill("#participants-youth", "4")
    await page.fill("#activity-0-title", "Water forum and kiosk site visits")
    await page.fill("#activity-0-held-on", "2027-06-08")
    await page.fill("#activity-0-ends-on", "2027-06-20")
    await page.fill("#activity-0-description", "Three sites <b>visited</b> with the utility.")
    await page.fill("#outcomes-agreements-signed", "2")
    await page.fill("#outcomes-trade-leads", "3")
    await page.fill("#outcomes-narrative", "A maintenance cooperative is founded.")
    await page.select_option("#spending-0-category", "travel")
    await page.fill("#spending-0-description", "Flights DEN-NBO")
    await page.fill("#spending-0-amount", "11500")
    await page.fill("#attachment-0-name", "kiosk-plans.pdf")
    await page.fill("#attachment-0-content-type", "application/pdf")
    await page.fill("#attachment-0-size-bytes", "48213")
    await page.click("#save-report")
    assert "The report was not saved" in await page.inner_text(".flash.error")
    adults = await page.inner_text("#participants-adults-error")
    assert adults == "The number of adults should be greater than or equal to 0."
    assert await page.get_attribute("#participants-adults", "aria-invalid") == "true"
    assert await value(page, "#activity-0-title") == "Water forum and kiosk site visits"
    assert await value(page, "#spending-0-amount") == "11500"
    assert await value(page, "#attachment-0-size-bytes") == "48213"
    assert await page.locator("main b").count() == 0

    # Saved as a draft, a spare row is offered for the next line of spending.
    await page.fill("#participants-adults", "6")
    await page.click("#save-report")
    assert await page.inner_text(".flash.ok") == "Report saved as a draft."
    assert await page.inner_text("#report-state") == "draft"
    assert await value(page, "#spending-0-amount") == "11500.00"
    await page.select_option("#spending-1-category", "accommodation")
    await page.fill("#spending-1-description", "Guest house, 14 nights")
    await page.fill("#spending-1-amount", "380000")
    await page.select_option("#spending-1-currency", "KES")

    # Submitting checks the whole report (409 naming the gaps): the lessons are missing.
    await page.click("#submit-report")
    assert "Saved, but not submitted yet" in await page.inner_text(".flash.error")
    lessons = await page.inner_text("#lessons-learned-error")
    assert lessons == "Required to submit."
    assert await value(page, "#spending-1-amount") == "380000"
    await checked(page, "portal-report")
    await page.fill("#lessons-learned", "Book the guest house before the flights.")
    await page.click("#submit-report")
    assert "Report submitted" in await page.inner_text(".flash.ok")
    assert await page.inner_text("#report-state") == "submitted"
    assert await page.inner_text("#actual-spending") == "14,426.00 USD"
    assert "380,000.00 KES, 2,926.00 USD" in await page.inner_text("#spent")
    await checked(page)

    await page.click("text=Clean water kiosks with Nairobi")
    assert "submitted" in await page.inner_text("#reports")
    await page.click("#withdraw")
    assert await page.locator("#withdraw-reason-error").count() == 1
    await page.fill("#withdraw-reason", "The delegation cannot travel this year.")
    await page.click("#withdraw")
    assert "Withdrawal requested" in await page.inner_text(".flash.ok")

    await page.click("text=My applications")
    row = page.locator("#applications tbody tr")
    assert await row.count() == 1
    assert "Clean water kiosks with Nairobi" in await row.inner_text()


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
