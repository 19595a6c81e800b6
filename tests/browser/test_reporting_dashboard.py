"""An officer opens the analytics dashboard in headless Chromium and reads the charts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page

from services.reporting.app import create_app
from services.reporting.settings import ReportingSettings
from shared.auth import Role, mint_token
from shared.migrations import upgrade
from tests.browser.pages import checked
from tests.support.browser import WithoutBroker, chromium, served
from tests.support.reporting import consumer_of, history


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[tuple[str, ReportingSettings]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"
    await asyncio.to_thread(upgrade, "reporting", url)
    settings = ReportingSettings(database_url=url)
    seeding = create_app(settings)
    async with consumer_of(seeding) as consume:
        await consume(*history())
    await seeding.state.runtime.engine.dispose()

    with served(WithoutBroker(create_app(settings))) as base:
        yield base, settings


async def bar_values(page: Page, chart: str, series: str) -> list[int]:
    values: list[int] = await page.locator(
        f"figure[data-chart='{chart}'] rect.bar[data-series='{series}']"
    ).evaluate_all("bars => bars.map(bar => Number(bar.dataset.value))")
    return values


async def caption(page: Page, chart: str) -> str:
    return await page.locator(f"figure[data-chart='{chart}'] figcaption").inner_text()


async def table_rows(page: Page, table: str) -> list[dict[str, str]]:
    """The table's body rows as the officer reads them, under the column headings."""
    found = page.locator(f"table[data-table='{table}']")
    head = await found.locator("thead th").all_inner_texts()
    rows = []
    for row in await found.locator("tbody tr").all():
        rows.append(dict(zip(head, await row.locator("td").all_inner_texts(), strict=True)))
    return rows


async def test_an_officer_reads_the_totals_off_the_dashboard_charts(
    dashboard: tuple[str, ReportingSettings],
) -> None:
    base, settings = dashboard
    officer = mint_token(settings, role=Role.PROGRAM_OFFICER)
    applicant = mint_token(settings, role=Role.APPLICANT, member_id="m-1")
    async with chromium() as browser:
        page = await browser.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))

        # A token in the address is no way in (it would sit in the history and the logs).
        await page.goto(f"{base}/dashboard?token={officer}")
        assert await page.locator("h1").inner_text() == "Sign in"
        await page.fill("#token", officer)
        await page.click("#sign-in")
        await page.wait_for_url(f"{base}/dashboard")
        assert await page.locator("h1").inner_text() == "All programs"
        assert await page.inner_text("#signed-in-as") == "program_officer"
        await checked(page, "dashboard")

        assert await bar_values(page, "applications-by-status", "Applications") == [
            1,
            1,
            1,
            1,
        ]
        assert await caption(page, "applications-by-status") == "4 applications"
        money = await caption(page, "money-by-program-USD")
        assert "Awarded 20,000.00 USD" in money and "Paid 16,400.00 USD" in money
        assert "Refunds requested 500.00 USD · Refunds received 500.00 USD" in money
        assert sum(await bar_values(page, "money-by-program-USD", "Awarded")) == 2_000_000
        assert await bar_values(page, "money-by-program-USD", "Refunds received") == [50_000, 0]
        refunds = page.locator(".kpi", has_text="Refunds received (USD)").locator("b")
        assert await refunds.inner_text() == "500.00 USD of 500.00 USD"
        assert await caption(page, "cash-flow-USD") == "Paid 16,400.00 USD · Due 3,600.00 USD"
        assert "Agreements / MOUs 3 · Trade leads 6 · Jobs created 3" in await caption(
            page, "outcomes"
        )
        # Planned against reported: A1 (reported, as revised) and A3 (not yet) planned.
        assert await bar_values(page, "planned-vs-actual", "Planned") == [4, 4, 12, 3]
        assert await bar_values(page, "planned-vs-actual", "Reported") == [3, 6, 0, 1]
        assert await caption(page, "planned-vs-actual") == (
            "2 applications with a plan, 1 reported · difference where reported: "
            "Agreements / MOUs 0 · Trade leads +2 · Students exchanged 0 · Follow-up projects -1"
        )
        programs = await table_rows(page, "planned-vs-actual-program")
        assert [
            (row["label"], row["outcome"], row["planned"], row["reported"], row["difference"])
            for row in programs
            if row["outcome"] == "Trade leads"
        ] == [
            ("African Urban Poverty Alleviation Program", "Trade leads", "4", "6", "+2"),
            ("Young Ambassadors Program: Tri-lateral North America", "Trade leads", "0", "", ""),
        ]
        assert "1 on time · 0 late" in await caption(page, "reports")
        chart = await page.locator("figure[data-chart='money-by-program-USD'] svg").bounding_box()
        assert chart is not None and chart["width"] > 300 and chart["height"] > 40

        await page.locator("header nav a", has_text="YAP-TNA").click()
        await page.wait_for_url(f"{base}/dashboard/programs/YAP-TNA")
        assert "Young Ambassadors" in await page.locator("h1").inner_text()
        assert "Awarded 12,000.00 USD" in await caption(page, "money-by-cycle-USD")
        applications = await table_rows(page, "planned-vs-actual-application")
        assert [
            (row["label"], row["outcome"], row["planned"], row["reported"]) for row in applications
        ] == [
            ("A3 (Springfield)", "Agreements / MOUs", "1", ""),
            ("A3 (Springfield)", "Trade leads", "0", ""),
            ("A3 (Springfield)", "Students exchanged", "12", ""),
            ("A3 (Springfield)", "Follow-up projects", "1", ""),
        ]
        assert await caption(page, "planned-vs-actual") == "1 application with a plan, 0 reported"
        await checked(page)
        assert await caption(page, "applications-by-status") == "2 applications"
        assert all(url.startswith(base) for url in requested), requested

        await page.click("#sign-out")
        await page.wait_for_selector("#token")
        await page.goto(f"{base}/dashboard/programs/YAP-TNA")
        assert await page.locator("#token").count() == 1  # signed out for real

        await page.fill("#token", applicant)
        async with page.expect_response(f"{base}/dashboard/sign-in") as answer:
            await page.click("#sign-in")
        assert (await answer.value).status == 403
        assert "for program officers" in await page.inner_text(".flash.error")
