"""The /inbox pages' rules, checked without a browser (the browser test clicks through them)."""

from __future__ import annotations

import re

import pytest

from tests.support.review import (
    ReviewHarness,
    report_review,
    report_submitted,
    request_reviews,
    reviewer,
)


@pytest.fixture
async def review(review: ReviewHarness) -> ReviewHarness:
    """The service with two reviewers and one review request waiting for them."""
    await review.add_reviewers(reviewer("r-1", "Asheville"), reviewer("r-2", "Boise"))
    await review.deliver(request_reviews(reviews_needed=1))
    return review


async def signed_in(review: ReviewHarness, reviewer_id: str) -> str:
    """Sign in through the form; return the CSRF value the pages carry."""
    token = review.token_for(reviewer_id)
    response = await review.client.post("/inbox/sign-in", data={"token": f"Bearer {token}"})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/inbox" in cookie
    page = await review.client.get("/inbox")
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match
    return match.group(1)


async def test_a_review_out_of_range_comes_back_with_the_criterion_named_and_values_kept(
    review: ReviewHarness,
) -> None:
    csrf = await signed_in(review, "r-1")
    [task] = await review.tasks("app-1")
    form = {
        "csrf": csrf,
        "score.relevance": "9",
        "score.feasibility": "4",
        "score.impact": "8",
        "recommendation": "approve",
        "comments": "Keep me",
        "attest_no_conflict": "yes",
    }
    response = await review.client.post(f"/inbox/tasks/{task.id}/review", data=form)
    assert response.status_code == 422
    assert "Criterion &#39;relevance&#39; must be scored from 0 to 5, not 9." in response.text
    assert 'value="9"' in response.text and "Keep me" in response.text
    assert await review.outbox() == []
    no_attestation = {k: v for k, v in form.items() if k != "attest_no_conflict"}
    no_attestation["score.relevance"] = "4"
    response = await review.client.post(f"/inbox/tasks/{task.id}/review", data=no_attestation)
    assert response.status_code == 422
    assert "attest" in response.text
    response = await review.client.post(
        f"/inbox/tasks/{task.id}/review", data={**form, "score.relevance": "4"}
    )
    assert response.status_code == 303
    assert len(await review.outbox("grants.review.completed.v1")) == 1


async def test_a_form_without_its_csrf_value_changes_nothing(review: ReviewHarness) -> None:
    await signed_in(review, "r-1")
    [task] = await review.tasks("app-1")
    response = await review.client.post(
        f"/inbox/tasks/{task.id}/recuse", data={"reason": "forged", "csrf": "0" * 40}
    )
    assert response.status_code == 403
    assert await review.outbox() == []


async def test_another_reviewers_task_page_is_not_found(review: ReviewHarness) -> None:
    await signed_in(review, "r-2")
    [task] = await review.tasks("app-1")
    assert (await review.client.get(f"/inbox/tasks/{task.id}")).status_code == 404


async def test_pages_load_nothing_from_elsewhere(review: ReviewHarness) -> None:
    sign_in = await review.client.get("/inbox")
    await signed_in(review, "r-1")
    [task] = await review.tasks("app-1")
    task_page = await review.client.get(f"/inbox/tasks/{task.id}")
    for page in (sign_in, task_page):
        assert page.status_code == 200
        assert not re.search(r'(src|href)="(https?:)?//', page.text)
        assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_a_report_task_page_shows_the_report_under_review(review: ReviewHarness) -> None:
    await review.deliver(
        report_submitted(lessons_learned="Partner schools need <a term's> notice.")
    )
    await review.deliver(report_review())
    [task] = [t for t in await review.tasks("app-1") if t.report_id == "report-1"]
    await signed_in(review, task.reviewer_id)
    page = await review.client.get(f"/inbox/tasks/{task.id}")
    assert page.status_code == 200
    report = page.text[page.text.index('<section id="report">') :]
    assert "The report (revision 1" in report
    assert "Participants: 10 adults, 0 youth" in report
    assert "Trade mission" in report and "Two MOUs signed." in report
    assert "Partner schools need &lt;a term&#39;s&gt; notice." in report  # escaped, not markup


async def test_a_task_page_shows_the_plan_and_its_money(review: ReviewHarness) -> None:
    [task] = await review.tasks("app-1")
    await signed_in(review, task.reviewer_id)
    page = await review.client.get(f"/inbox/tasks/{task.id}")
    assert page.status_code == 200
    plan = page.text[page.text.index('<section id="plan"') :]
    plan = plan[: plan.index("</section>")]
    assert "6 adults, 0 youth" in plan
    assert "Kisumu (KE)" in plan
    assert "Flights Kisumu to Roanoke for six engineers" in plan
    assert "Host families, one month" in plan
    assert "in cash" in plan and "in kind" in plan
