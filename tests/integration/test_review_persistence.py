"""The review service's tables and transactions on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from services.review.domain import TaskStatus, report_subject, round_subject
from shared.contracts.envelope import new_envelope
from shared.contracts.review import CriterionScore, ReportReviewed, ReviewCompleted
from shared.db import create_engine
from shared.messaging.outbox import message_headers
from shared.migrations import upgrade
from tests.support.review import (
    NOW,
    ReviewHarness,
    drop_database,
    fresh_database,
    request_reviews,
    review_body,
    review_service,
    reviewer,
)


@pytest.fixture(params=["sqlite", "postgres"])
async def review(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReviewHarness]:
    url, name = await fresh_database(request.param, tmp_path)
    try:
        async for running in review_service(url, tmp_path):
            yield running
    finally:
        await drop_database(name)


async def test_a_redelivered_request_changes_nothing_and_dates_survive_the_round_trip(
    review: ReviewHarness,
) -> None:
    await review.add_reviewers(reviewer("r-1", "Asheville"), reviewer("r-2", "Boise"))
    event = request_reviews(reviews_needed=2, due_at=NOW + timedelta(days=3, minutes=7))
    await review.deliver(event)
    await review.deliver(event)  # the same message again: the inbox drops it
    assert len(await review.queued_mail()) == 2
    tasks = await review.tasks("app-1")
    assert sorted(t.reviewer_id for t in tasks) == ["r-1", "r-2"]
    assert {t.due_at for t in tasks} == {NOW + timedelta(days=3, minutes=7)}
    assert all(t.due_at.tzinfo is not None for t in tasks)
    detail = await review.client.get(
        f"/v1/tasks/{tasks[0].id}", headers=review.as_reviewer(tasks[0].reviewer_id)
    )
    assert detail.json()["due_at"].startswith("2027-03-04T09:07:00")


async def test_two_simultaneous_submissions_of_one_task_make_one_review(
    review: ReviewHarness,
) -> None:
    await review.add_reviewers(reviewer("r-1"))
    await review.deliver(request_reviews(reviews_needed=1))
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
    review: ReviewHarness,
) -> None:
    await review.add_reviewers(
        reviewer("scarce", "Asheville", capacity=1), reviewer("plenty", "Boise", capacity=10)
    )
    await asyncio.gather(
        *(review.deliver(request_reviews(f"app-{n}", reviews_needed=2)) for n in range(4))
    )
    tasks = [t for n in range(4) for t in await review.tasks(f"app-{n}")]
    assert sum(t.reviewer_id == "scarce" for t in tasks) == 1
    assert sum(t.reviewer_id == "plenty" for t in tasks) == 4
    assert all(t.status is TaskStatus.OPEN for t in tasks)
    assert len(await review.outbox("grants.review.reviewers_short.v1")) == 3


async def test_the_upgrade_keeps_unsent_mail_handled_commands_and_files_earlier_answers(
    isolated_database_url: str,
) -> None:
    url = isolated_database_url
    await asyncio.to_thread(upgrade, "review", url, "review_0004")
    completed = new_envelope(
        ReviewCompleted(
            application_id="app-old",
            round=2,
            task_id="task-old",
            reviewer_id="r-1",
            scores=[CriterionScore(criterion="relevance", score=4)],
            weighted_total_bp=8000,
            recommendation="approve",
        ),
        producer="review",
        application_id="app-old",
    )
    reviewed = new_envelope(
        ReportReviewed(
            application_id="app-old", report_id="report-old", reviewer_id="r-1", outcome="approved"
        ),
        producer="review",
        application_id="app-old",
    )
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for envelope, sent in ((completed, NOW), (reviewed, None)):
                await connection.execute(
                    text(
                        "INSERT INTO review_outbox (event_id, topic, message_key, body, headers,"
                        " created_at, sent_at) VALUES (:id, 'topic', 'app-old', :body, :headers,"
                        " :at, :sent)"
                    ),
                    {
                        "id": str(envelope.event_id),
                        "body": envelope.model_dump_json(),
                        "headers": json.dumps(message_headers(envelope)),
                        "at": NOW,
                        "sent": sent,
                    },
                )
            for subject, sent in (("Sent before", NOW), ("Waiting", None)):
                await connection.execute(
                    text(
                        "INSERT INTO review_mail (recipients, subject, body, created_at, sent_at)"
                        " VALUES ('[\"r-1@example.org\"]', :subject, 'Dear r-1', :at, :sent)"
                    ),
                    {"subject": subject, "at": NOW, "sent": sent},
                )
            await connection.execute(
                text(
                    "INSERT INTO review_commands (command_id, topic, handled_at)"
                    " VALUES ('reassign-old', 'grants.review.reassign.v1', :at)"
                ),
                {"at": NOW},
            )
        await asyncio.to_thread(upgrade, "review", url)
        async with engine.connect() as connection:
            mail = (await connection.execute(text("SELECT subject FROM review_mail_queue"))).all()
            receipts = (
                await connection.execute(text("SELECT command_id FROM review_command_receipts"))
            ).all()
            subjects = dict(
                (
                    await connection.execute(text("SELECT event_id, subject FROM review_outbox"))
                ).all()
            )
    finally:
        await engine.dispose()
    assert [row.subject for row in mail] == ["Waiting"]
    assert [row.command_id for row in receipts] == ["reassign-old"]
    assert subjects == {
        str(completed.event_id): round_subject("app-old", 2),
        str(reviewed.event_id): report_subject("app-old", "report-old"),
    }
