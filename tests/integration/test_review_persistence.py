"""The review service's tables and transactions on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.review import service
from services.review.domain import TaskStatus
from tests.support.review import (
    NOW,
    ReviewService,
    drop_database,
    fresh_database,
    request_reviews,
    review_body,
    review_service,
    reviewer,
)


@pytest.fixture(params=["sqlite", "postgres"])
async def review(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReviewService]:
    url, name = await fresh_database(request.param, tmp_path)
    try:
        async for running in review_service(url, tmp_path):
            yield running
    finally:
        await drop_database(name)


async def test_a_redelivered_request_changes_nothing_and_dates_survive_the_round_trip(
    review: ReviewService,
) -> None:
    await review.add_reviewers(reviewer("r-1", "Asheville"), reviewer("r-2", "Boise"))
    event = request_reviews(reviews_needed=2, due_at=NOW + timedelta(days=3, minutes=7))
    inbox = review.runtime.inbox("on_review_requested")

    async def change(session: AsyncSession) -> None:
        await service.request_reviews(
            session, review.runtime.outbox, event, "grants.review.request.v1", review.clock()
        )

    assert await inbox.process(event, "grants.review.request.v1", change) is True
    assert await inbox.process(event, "grants.review.request.v1", change) is False
    tasks = await review.tasks("app-1")
    assert sorted(t.reviewer_id for t in tasks) == ["r-1", "r-2"]
    assert {t.due_at for t in tasks} == {NOW + timedelta(days=3, minutes=7)}
    assert all(t.due_at.tzinfo is not None for t in tasks)
    detail = await review.client.get(
        f"/v1/tasks/{tasks[0].id}", headers=review.as_reviewer(tasks[0].reviewer_id)
    )
    assert detail.json()["due_at"].startswith("2027-03-04T09:07:00")


async def test_two_simultaneous_submissions_of_one_task_make_one_review(
    review: ReviewService,
) -> None:
    await review.add_reviewers(reviewer("r-1"))
    await review.deliver(request_reviews(reviews_needed=1), service.request_reviews)
    [task] = await review.tasks("app-1")
    headers = review.as_reviewer("r-1")
    answers = await asyncio.gather(
        *(
            review.client.post(f"/v1/tasks/{task.id}/review", json=review_body(), headers=headers)
            for _ in range(3)
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 409, 409]
    assert len(await review.outbox("grants.review.completed.v1")) == 1


async def test_simultaneous_requests_never_take_a_reviewer_over_capacity(
    review: ReviewService,
) -> None:
    await review.add_reviewers(
        reviewer("scarce", "Asheville", capacity=1), reviewer("plenty", "Boise", capacity=10)
    )
    await asyncio.gather(
        *(
            review.deliver(request_reviews(f"app-{n}", reviews_needed=2), service.request_reviews)
            for n in range(4)
        )
    )
    tasks = [t for n in range(4) for t in await review.tasks(f"app-{n}")]
    assert sum(t.reviewer_id == "scarce" for t in tasks) == 1
    assert sum(t.reviewer_id == "plenty" for t in tasks) == 4
    assert all(t.status is TaskStatus.OPEN for t in tasks)
    assert len(await review.outbox("grants.review.reviewers_short.v1")) == 3
