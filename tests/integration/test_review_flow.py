"""The review service on real Tansu and PostgreSQL: commands in, tasks, events out.

The workflow sends a command again when it has not heard the answer: the answer may have
been lost on its way (a broker that forgot what it acknowledged). Whatever happened
since, the review service publishes what it answered again, with the same event ids.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.review.app import create_app
from services.review.persistence import ReviewStore, TaskFilter, TaskRow
from services.review.schemas import ReviewerIn
from services.review.service import ReviewService
from services.review.settings import ReviewSettings
from shared.auth import Role, mint_token
from shared.contracts.envelope import Envelope
from shared.contracts.topics import (
    REASSIGN_REVIEW,
    REPORT_REVIEWED,
    REPORT_SUBMITTED,
    REQUEST_REPORT_REVIEW,
    REQUEST_REVIEWS,
    REVIEW_COMPLETED,
    Topic,
    broker_topic_names,
)
from shared.messaging.topics_admin import ensure_topics
from tests.support.messaging import eventually, on_test_broker, publish_envelopes, read_topic
from tests.support.processes import Tansu
from tests.support.review import (
    drop_database,
    fresh_database,
    reassign,
    report_review,
    report_submitted,
    request_reviews,
    review_body,
    reviewer,
)


@dataclass
class LiveReview:
    """The review service with its consumer and relay running, on Tansu and PostgreSQL."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: ReviewSettings
    bootstrap: str

    @property
    def service(self) -> ReviewService:
        service: ReviewService = self.app.state.service
        return service

    def auth(self, role: Role, reviewer_id: str | None = None) -> dict[str, str]:
        token = mint_token(self.settings, role=role, reviewer_id=reviewer_id)
        return {"Authorization": f"Bearer {token}"}

    async def add_reviewers(self, *profiles: ReviewerIn) -> None:
        for profile in profiles:
            response = await self.client.post(
                "/v1/reviewers",
                json=profile.model_dump(mode="json"),
                headers=self.auth(Role.PROGRAM_OFFICER),
            )
            assert response.status_code == 201, response.text

    async def publish(self, topic: Topic, *envelopes: Envelope[Any]) -> None:
        """Send as the workflow does: each envelope a message keyed by its application."""
        await publish_envelopes(
            self.bootstrap, topic.qualified(self.settings.topic_prefix), *envelopes
        )

    async def tasks(self, application_id: str) -> list[TaskRow]:
        async with self.service.reading() as work:
            found = await ReviewStore(work.session).find_tasks(
                TaskFilter(application_id=application_id)
            )
        return [record.task for record in found]

    async def staffed(self, application_id: str, count: int) -> list[TaskRow]:
        """The tasks of an application, once the command that makes them was handled."""

        async def tasks_made() -> bool:
            return len(await self.tasks(application_id)) >= count

        await eventually(tasks_made, timeout=30)
        return await self.tasks(application_id)

    async def submit(self, task: TaskRow, **body: Any) -> None:
        response = await self.client.post(
            f"/v1/tasks/{task.id}/review",
            json=review_body(**body),
            headers=self.auth(Role.REVIEWER, task.reviewer_id),
        )
        assert response.status_code == 201, response.text

    async def read(self, topic: Topic, count: int) -> list[dict[str, Any]]:
        """The first ``count`` events on ``topic`` (fewer if they do not come)."""
        records = await read_topic(
            self.bootstrap, topic.qualified(self.settings.topic_prefix), count, timeout=20
        )
        return [json.loads(record.value) for record in records]


async def answered_again(
    live: LiveReview, count: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The completed reviews on the topic: those first published, and those after them."""
    events = await live.read(REVIEW_COMPLETED, 2 * count)
    assert len(events) == 2 * count, "the reviews were not published again"
    return events[:count], events[count:]


@pytest.fixture
async def live(tansu: Tansu, tmp_path: Path, unique: str) -> AsyncIterator[LiveReview]:
    url, name = await fresh_database("postgres", tmp_path)
    prefix = f"{unique}."
    await ensure_topics(tansu.bootstrap, broker_topic_names(prefix))
    settings = ReviewSettings(
        environment="test",
        database_url=url,
        state_dir=tmp_path,
        **on_test_broker(tansu.bootstrap, prefix),
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://review") as client:
                yield LiveReview(app, client, settings, tansu.bootstrap)
    finally:
        await drop_database(name)


async def test_a_review_request_on_kafka_becomes_tasks_and_a_review_becomes_an_event(
    live: LiveReview,
) -> None:
    await live.add_reviewers(
        reviewer("r-1", "Asheville"), reviewer("r-2", "Boise"), reviewer("r-3", "Chico")
    )
    first = request_reviews("app-kafka", reviews_needed=2)
    resent = request_reviews("app-kafka", reviews_needed=2)  # same command, new event id
    # The marker (round 2, same key, same partition) is handled after everything before it.
    marker = request_reviews("app-kafka", round=2, reviews_needed=1)
    await live.publish(REQUEST_REVIEWS, first, first, resent, marker)

    tasks = await live.staffed("app-kafka", 3)
    round_one = [task for task in tasks if task.round == 1]
    assert sorted(t.reviewer_id for t in round_one) == ["r-1", "r-2"]

    async def reviewers_mailed() -> bool:
        return len(list((live.settings.state_dir / "mail").glob("*.eml"))) == 3

    await eventually(reviewers_mailed, timeout=10)

    task = round_one[0]
    await live.submit(task)
    [event] = await live.read(REVIEW_COMPLETED, 1)
    assert event["application_id"] == "app-kafka"
    assert event["event_type"] == "ReviewCompleted"
    assert event["correlation_id"] == first.correlation_id
    assert event["payload"]["task_id"] == task.id
    assert event["payload"]["weighted_total_bp"] == 8833


async def test_a_review_request_sent_again_gets_the_reviews_that_are_in_again(
    live: LiveReview,
) -> None:
    await live.add_reviewers(reviewer("r-1", "Asheville"), reviewer("r-2", "Boise"))
    await live.publish(REQUEST_REVIEWS, request_reviews("app-lost", reviews_needed=2))
    for task in await live.staffed("app-lost", 2):
        await live.submit(task)
    answered = await live.read(REVIEW_COMPLETED, 2)
    assert len(answered) == 2

    # The workflow never heard them (the broker forgot): it sends its request again.
    await live.publish(REQUEST_REVIEWS, request_reviews("app-lost", reviews_needed=2))
    before, again = await answered_again(live, len(answered))
    assert before == answered
    assert sorted(e["event_id"] for e in again) == sorted(e["event_id"] for e in answered)
    assert len(await live.tasks("app-lost")) == 2


async def test_an_officer_adding_a_reviewer_to_a_round_gets_one_more_task(
    live: LiveReview,
) -> None:
    await live.add_reviewers(
        reviewer("r-1", "Asheville"), reviewer("r-2", "Boise"), reviewer("r-3", "Chico")
    )
    await live.publish(REQUEST_REVIEWS, request_reviews("app-spread", reviews_needed=2))
    for task in await live.staffed("app-spread", 2):
        await live.submit(task)
    assert len(await live.read(REVIEW_COMPLETED, 2)) == 2

    # The two disagreed; an officer asked for a third opinion (the workflow's new command).
    added_command = "application-app-spread:review:1:added:3"
    await live.publish(
        REQUEST_REVIEWS,
        request_reviews("app-spread", reviews_needed=3, command_id=added_command),
    )
    tasks = await live.staffed("app-spread", 3)
    assert sorted(task.reviewer_id for task in tasks) == ["r-1", "r-2", "r-3"]
    assert {task.round for task in tasks} == {1}
    [added] = [task for task in tasks if task.reviewer_id == "r-3"]
    await live.submit(added)
    third = await live.read(REVIEW_COMPLETED, 3)
    assert third[-1]["payload"]["task_id"] == added.id


async def test_a_new_reassignment_after_every_review_is_in_gets_the_reviews_again(
    live: LiveReview,
) -> None:
    await live.add_reviewers(
        reviewer("r-1", "Asheville"), reviewer("r-2", "Boise"), reviewer("r-3", "Chico")
    )
    await live.publish(REQUEST_REVIEWS, request_reviews("app-late", reviews_needed=2))
    for task in await live.staffed("app-late", 2):
        await live.submit(task)
    answered = await live.read(REVIEW_COMPLETED, 2)
    assert len(answered) == 2

    # The workflow's review deadline passed without the reviews: a new reassignment.
    await live.publish(REASSIGN_REVIEW, reassign("app-late"))
    _before, again = await answered_again(live, len(answered))
    assert sorted(e["event_id"] for e in again) == sorted(e["event_id"] for e in answered)
    tasks = await live.tasks("app-late")
    assert sorted((t.reviewer_id, t.status.value) for t in tasks) == [
        ("r-1", "completed"),
        ("r-2", "completed"),
    ]


async def test_a_report_review_request_sent_again_gets_the_report_review_again(
    live: LiveReview,
) -> None:
    await live.add_reviewers(reviewer("r-1", "Asheville"))
    command = report_review("app-report")
    await live.publish(REQUEST_REPORT_REVIEW, command)
    [task] = await live.staffed("app-report", 1)
    scores = {"completeness": 4, "outcomes_achieved": 4, "spending_matches_budget": 5}
    await live.submit(task, scores=scores)
    [reviewed] = await live.read(REPORT_REVIEWED, 1)
    assert (reviewed["payload"]["report_id"], reviewed["payload"]["outcome"]) == (
        "report-1",
        "approved",
    )

    await live.publish(REQUEST_REPORT_REVIEW, report_review("app-report"))  # sent again
    [first, again] = await live.read(REPORT_REVIEWED, 2)
    assert again == first
    assert len(await live.tasks("app-report")) == 1


async def test_a_report_published_on_kafka_shows_in_its_review_task(live: LiveReview) -> None:
    await live.add_reviewers(reviewer("r-1", "Asheville"))
    # The workflow asks for the review before reporting's event arrives: either order works.
    await live.publish(REQUEST_REPORT_REVIEW, report_review("app-report"))
    lessons = "Partner schools need a term's notice."
    await live.publish(REPORT_SUBMITTED, report_submitted("app-report", lessons_learned=lessons))
    headers = live.auth(Role.REVIEWER, "r-1")

    async def shown_report() -> dict[str, Any] | None:
        queue = (await live.client.get("/v1/tasks", headers=headers)).json()
        report_tasks = [task for task in queue if task["kind"] == "report"]
        if not report_tasks:
            return None
        url = f"/v1/tasks/{report_tasks[0]['id']}"
        shown: dict[str, Any] | None = (await live.client.get(url, headers=headers)).json()[
            "application"
        ]["report"]
        return shown

    async def report_shown() -> bool:
        return await shown_report() is not None

    await eventually(report_shown, timeout=30)
    shown = await shown_report()
    assert shown is not None
    assert shown["revision"] == 1
    assert shown["content"]["lessons_learned"] == lessons
    assert shown["actual_spending"] == {"amount_minor": 750_000, "currency": "USD"}
