"""A reviewer works the /inbox page in headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from services.review.app import create_app
from services.review.service import ReviewService
from services.review.settings import ReviewSettings
from shared.auth import Role, mint_token
from shared.contracts.workflows import RequestReviews
from tests.browser.pages import checked
from tests.support.browser import WithoutBroker, chromium, served
from tests.support.review import Clock, fresh_database, handlers_by_payload, request_reviews


@pytest.fixture
def serve() -> Iterator[Any]:
    with contextlib.ExitStack() as servers:
        yield lambda app: servers.enter_context(served(app))


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def seeded_inbox(tmp_path: Path) -> tuple[ReviewSettings, Any]:
    """Demo reviewers and two applications waiting for demo-reviewer-1."""
    url, _ = await fresh_database("sqlite", tmp_path)
    settings = ReviewSettings(environment="test", database_url=url, state_dir=tmp_path)
    clock = Clock()
    seeding = create_app(settings, clock=clock)
    review: ReviewService = seeding.state.service
    async with review.work() as work:
        await review.seed_demo_reviewers(work)
    _topic, deliver = handlers_by_payload(review)[RequestReviews]
    for application_id, title in (
        ("app-water", "Roanoke and Kisumu water committees"),
        ("app-market", "Roanoke and Kisumu market traders"),
    ):
        await deliver(request_reviews(application_id, reviews_needed=2, title=title))
    await review.runtime.engine.dispose()
    return settings, create_app(settings, clock=clock)


async def test_a_reviewer_signs_in_reviews_a_task_and_sees_it_leave_the_queue(
    tmp_path: Path, serve: Any, browser: Browser
) -> None:
    settings, app = await seeded_inbox(tmp_path)
    base = serve(WithoutBroker(app))
    token = mint_token(settings, role=Role.REVIEWER, reviewer_id="demo-reviewer-1")

    page = await browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    await page.goto(f"{base}/inbox")
    await page.fill("textarea[name=token]", f"Bearer {token}")
    await page.click("#sign-in")
    await page.wait_for_selector("#queue")
    assert await page.locator("#queue tbody tr").count() == 2
    assert "My queue (2 open)" in await page.inner_text("h2")
    await checked(page, "inbox-queue")

    await page.click("text=Roanoke and Kisumu water committees")
    await page.wait_for_selector("#review-form")
    assert "relevance" in await page.inner_text("#review-form")
    await checked(page, "inbox-task")
    await page.fill('input[name="score.relevance"]', "4")
    await page.fill('input[name="score.feasibility"]', "3")
    await page.fill('input[name="score.impact"]', "7")
    await page.check('input[name=recommendation][value="approve"]')
    await page.fill("#comments", "A sound plan with a committed partner.")
    await page.check("input[name=attest_no_conflict]")
    await page.click("#submit-review")

    await page.wait_for_selector(".flash.ok")
    assert "Review submitted" in await page.inner_text(".flash.ok")
    assert await page.locator("#queue tbody tr").count() == 1
    assert "water committees" not in await page.inner_text("#queue")
    assert "water committees" in await page.inner_text("#closed")

    await page.click("text=Roanoke and Kisumu market traders")
    await page.fill("#reason", "I chaired the Roanoke market board last year.")
    await page.click("#recuse")
    await page.wait_for_selector("#queue-empty")
    assert "recused" in await page.inner_text(".flash.ok")

    await page.click("#sign-out")
    await page.wait_for_selector("textarea[name=token]")
    await page.goto(f"{base}/inbox")
    assert await page.locator("textarea[name=token]").count() == 1  # signed out for real
    assert all(url.startswith(base) for url in requested), "the page loaded a foreign asset"

    answer = await page.request.get(
        f"{base}/v1/tasks?status=all", headers={"Authorization": f"Bearer {token}"}
    )
    tasks = {task["title"]: task["status"] for task in await answer.json()}
    # The application it recused on is gone from its list: it never sees it again.
    assert tasks == {"Roanoke and Kisumu water committees": "completed"}


async def test_a_non_reviewer_token_cannot_sign_in(
    tmp_path: Path, serve: Any, browser: Browser
) -> None:
    settings, app = await seeded_inbox(tmp_path)
    base = serve(WithoutBroker(app))
    page = await browser.new_page()
    await page.goto(f"{base}/inbox")
    await page.fill("textarea[name=token]", mint_token(settings, role=Role.PROGRAM_OFFICER))
    async with page.expect_response(f"{base}/inbox/sign-in") as answer:
        await page.click("#sign-in")
    response = await answer.value
    response_text = await response.text()
    assert response.status == 403
    assert "for reviewers" in response_text
    await page.fill("textarea[name=token]", "not-a-token")
    await page.click("#sign-in")
    assert "cannot be used" in await page.inner_text(".flash.error")
