"""The review service on real Tansu and PostgreSQL: commands in, tasks, events out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from services.review import persistence as db
from services.review.app import create_app
from services.review.settings import ReviewSettings
from shared.auth import Role, mint_token
from shared.contracts.envelope import Envelope
from shared.contracts.topics import (
    REPORT_SUBMITTED,
    REQUEST_REPORT_REVIEW,
    REQUEST_REVIEWS,
    REVIEW_COMPLETED,
    broker_topic_names,
)
from shared.messaging.outbox import message_headers
from shared.messaging.topics_admin import ensure_topics
from tests.support.messaging import eventually, read_topic
from tests.support.processes import Tansu
from tests.support.review import (
    drop_database,
    fresh_database,
    report_review,
    report_submitted,
    request_reviews,
    review_body,
    reviewer,
)


@pytest.fixture
async def running(
    tansu: Tansu, tmp_path: Path, unique: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, ReviewSettings]]:
    url, name = await fresh_database("postgres", tmp_path)
    prefix = f"{unique}."
    await ensure_topics(tansu.bootstrap, broker_topic_names(prefix))
    settings = ReviewSettings(
        environment="test",
        database_url=url,
        state_dir=tmp_path,
        kafka_bootstrap_servers=tansu.bootstrap,
        topic_prefix=prefix,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=300,
        outbox_poll_interval_ms=50,
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://review") as client:
                yield app, client, settings
    finally:
        await drop_database(name)


async def publish(bootstrap: str, topic: str, *envelopes: Envelope[Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(
                topic,
                envelope.model_dump_json().encode(),
                key=envelope.application_id.encode(),
                headers=[(k, v.encode()) for k, v in message_headers(envelope).items()],
            )
    finally:
        await producer.stop()


async def test_a_review_request_on_kafka_becomes_tasks_and_a_review_becomes_an_event(
    running: tuple[FastAPI, httpx.AsyncClient, ReviewSettings], tansu: Tansu
) -> None:
    app, client, settings = running
    officer = {"Authorization": f"Bearer {mint_token(settings, role=Role.PROGRAM_OFFICER)}"}
    for profile in (
        reviewer("r-1", "Asheville"),
        reviewer("r-2", "Boise"),
        reviewer("r-3", "Chico"),
    ):
        response = await client.post(
            "/v1/reviewers", json=profile.model_dump(mode="json"), headers=officer
        )
        assert response.status_code == 201

    first = request_reviews("app-kafka", reviews_needed=2)
    resent = request_reviews("app-kafka", reviews_needed=2)  # same command, new event id
    # The marker (round 2, same key, same partition) is handled after everything before it.
    marker = request_reviews("app-kafka", round=2, reviews_needed=1)
    topic = REQUEST_REVIEWS.qualified(settings.topic_prefix)
    await publish(tansu.bootstrap, topic, first, first, resent, marker)

    sessions = app.state.runtime.sessions

    async def tasks(round: int) -> list[db.TaskRow]:
        async with sessions() as session:
            pairs = await db.find_tasks(session, db.TaskFilter(application_id="app-kafka"))
        return [task for task, _request in pairs if task.round == round]

    async def marker_handled() -> bool:
        return len(await tasks(2)) == 1

    await eventually(marker_handled, timeout=30)
    round_one = await tasks(1)
    assert sorted(t.reviewer_id for t in round_one) == ["r-1", "r-2"]

    async def reviewers_mailed() -> bool:
        return len(list((settings.state_dir / "mail").glob("*.eml"))) == 3

    await eventually(reviewers_mailed, timeout=10)

    task = round_one[0]
    token = mint_token(settings, role=Role.REVIEWER, reviewer_id=task.reviewer_id)
    response = await client.post(
        f"/v1/tasks/{task.id}/review",
        json=review_body(),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text

    [record] = await read_topic(
        tansu.bootstrap, REVIEW_COMPLETED.qualified(settings.topic_prefix), 1, timeout=20
    )
    event = json.loads(record.value)
    assert record.key == b"app-kafka"
    assert event["event_type"] == "ReviewCompleted"
    assert event["correlation_id"] == first.correlation_id
    assert event["payload"]["task_id"] == task.id
    assert event["payload"]["weighted_total_bp"] == 8833


async def test_a_report_published_on_kafka_shows_in_its_review_task(
    running: tuple[FastAPI, httpx.AsyncClient, ReviewSettings], tansu: Tansu
) -> None:
    _app, client, settings = running
    officer = {"Authorization": f"Bearer {mint_token(settings, role=Role.PROGRAM_OFFICER)}"}
    profile = reviewer("r-1", "Asheville")
    created = await client.post(
        "/v1/reviewers", json=profile.model_dump(mode="json"), headers=officer
    )
    assert created.status_code == 201
    # The workflow asks for the review before reporting's event arrives: either order works.
    await publish(
        tansu.bootstrap,
        REQUEST_REPORT_REVIEW.qualified(settings.topic_prefix),
        report_review("app-report"),
    )
    report = report_submitted("app-report", lessons_learned="Partner schools need a term's notice.")
    await publish(tansu.bootstrap, REPORT_SUBMITTED.qualified(settings.topic_prefix), report)
    token = mint_token(settings, role=Role.REVIEWER, reviewer_id="r-1")
    headers = {"Authorization": f"Bearer {token}"}

    async def shown_report() -> dict[str, Any] | None:
        queue = (await client.get("/v1/tasks", headers=headers)).json()
        report_tasks = [task for task in queue if task["kind"] == "report"]
        if not report_tasks:
            return None
        detail = (await client.get(f"/v1/tasks/{report_tasks[0]['id']}", headers=headers)).json()
        shown: dict[str, Any] | None = detail["application"]["report"]
        return shown

    async def report_shown() -> bool:
        return await shown_report() is not None

    await eventually(report_shown, timeout=30)
    shown = await shown_report()
    assert shown is not None
    assert shown["revision"] == 1
    assert shown["content"]["lessons_learned"] == "Partner schools need a term's notice."
    assert shown["actual_spending"] == {"amount_minor": 750_000, "currency": "USD"}
