"""The reporting service on Tansu and PostgreSQL: events in, events out, answers given
again, and the rebuild."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from services.reporting.analytics.summaries import ApplicationSummary
from services.reporting.analytics.tables import Dimension, TableName, build_table
from services.reporting.app import create_app
from services.reporting.persistence import ReportingStore, messaging
from services.reporting.rebuild import rebuild
from services.reporting.settings import ReportingSettings
from shared.auth import Role
from shared.contracts import topics
from shared.contracts.topics import broker_topic_names
from shared.db import create_engine, create_session_factory
from shared.messaging.topics_admin import ensure_topics
from shared.migrations import upgrade
from tests.support.messaging import eventually, on_test_broker, read_topic
from tests.support.processes import Tansu
from tests.support.reporting import (
    EXPECTED,
    Event,
    Served,
    again,
    at,
    budget_line,
    history,
    report_overdue,
    report_requested,
    report_reviewed,
    reserved,
)

pytestmark = pytest.mark.postgres


@dataclass
class Live(Served):
    producer: AIOKafkaProducer

    def topic(self, topic: topics.Topic) -> str:
        return topic.qualified(self.settings.topic_prefix)

    async def read(self, topic: topics.Topic, count: int) -> list[Any]:
        return await read_topic(self.settings.kafka_bootstrap_servers, self.topic(topic), count)

    async def publish(self, *events: Event) -> None:
        """Publish in batches of several records, as a busy producer does."""
        sent = [
            await self.producer.send(
                self.topic(topic),
                envelope.model_dump_json().encode(),
                key=envelope.application_id.encode(),
                headers=[("content-type", b"application/json")],
            )
            for topic, envelope in events
        ]
        await asyncio.gather(*sent)


@pytest.fixture
async def live(tansu: Tansu, postgres_url: str, unique: str) -> AsyncIterator[Live]:
    prefix = f"{unique}."
    await ensure_topics(tansu.bootstrap, broker_topic_names(prefix))
    await asyncio.to_thread(upgrade, "reporting", postgres_url)
    settings = ReportingSettings(
        database_url=postgres_url, **on_test_broker(tansu.bootstrap, prefix)
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=tansu.bootstrap, enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
                yield Live(app, client, settings, unique, producer)
    finally:
        await producer.stop()


def payloads(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(record.value)["payload"] for record in records]


async def test_report_requested_submitted_and_reviewed_end_to_end(live: Live) -> None:
    member, application, report = f"{live.unique}-m", f"{live.unique}-A", f"{live.unique}-R"
    due = datetime.now(UTC).date() - timedelta(days=2)
    await live.publish(
        report_requested(
            application,
            report,
            when=datetime.now(UTC),
            member_id=member,
            due_on=due,
            awarded=1_000_000,
            budget=[budget_line("MXN", 17_000_000, 1_000_000, "travel")],
        ),
        report_overdue(application, report, when=datetime.now(UTC), member_id=member, due_on=due),
    )
    applicant = live.headers(Role.APPLICANT, member)

    async def requested() -> bool:
        answer = await live.client.get("/v1/reports", headers=applicant)
        items = answer.json()["items"]
        # Two topics: the overdue notice may come first, and then waits for the request.
        return bool(items) and items[0]["overdue"] and items[0]["awarded"] is not None

    await eventually(requested, timeout=20)
    [lost] = payloads(
        await read_topic(
            live.settings.kafka_bootstrap_servers, live.topic(topics.MEMBER_STANDING_CHANGED), 1
        )
    )
    assert lost["good_standing"] is False and lost["reason"] == "report_overdue"

    body = {
        "participants": {"adults": 3, "youth": 12},
        "activities": [{"title": "School exchange", "held_on": str(due - timedelta(days=20))}],
        "outcomes": {"students_exchanged": 12, "follow_up_projects": 1},
        "spending": [
            {"category": "travel", "amount": {"amount_minor": 8_500_000, "currency": "MXN"}}
        ],
        "lessons_learned": "Host families need a month's notice.",
    }
    saved = await live.client.put(f"/v1/reports/{report}", json=body, headers=applicant)
    assert saved.status_code == 200, saved.text
    submitted = await live.client.post(f"/v1/reports/{report}/submit", headers=applicant)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["late"] is True

    [event] = payloads(
        await read_topic(
            live.settings.kafka_bootstrap_servers, live.topic(topics.REPORT_SUBMITTED), 1
        )
    )
    assert event["actual_spending"] == {"amount_minor": 500_000, "currency": "USD"}
    assert event["content"]["spending"][0]["amount"]["currency"] == "MXN"
    standing = payloads(await live.read(topics.MEMBER_STANDING_CHANGED, 2))
    assert [change["reason"] for change in standing] == ["report_overdue", "report_received"]
    assert standing[1]["good_standing"] is True

    await live.publish(
        report_reviewed(
            application, report, "approved", when=datetime.now(UTC), comments="Thorough."
        )
    )

    async def approved() -> bool:
        answer = await live.client.get(f"/v1/reports/{report}", headers=applicant)
        return bool(answer.json()["state"] == "approved")

    await eventually(approved, timeout=20)
    view = (await live.client.get(f"/v1/reports/{report}", headers=applicant)).json()
    assert view["reviews"][0]["comments"] == "Thorough."

    officer = live.headers(Role.PROGRAM_OFFICER)
    params = {"group_by": "member", "member_id": member}

    async def counted() -> bool:
        # Analytics learns of the submission from its own topic, like everyone else.
        answer = await live.client.get("/v1/analytics/reports", params=params, headers=officer)
        rows = answer.json()["rows"]
        return bool(rows) and rows[0]["late"] == 1 and rows[0]["approved"] == 1

    await eventually(counted, timeout=20)


async def test_a_report_request_sent_again_is_answered_with_the_submission_again(
    live: Live,
) -> None:
    member, application, report = f"{live.unique}-m", f"{live.unique}-A", f"{live.unique}-R"
    due = datetime.now(UTC).date() - timedelta(days=1)
    request = report_requested(
        application, report, when=datetime.now(UTC), member_id=member, due_on=due
    )
    await live.publish(
        request,
        report_overdue(application, report, when=datetime.now(UTC), member_id=member, due_on=due),
    )
    applicant = live.headers(Role.APPLICANT, member)

    async def overdue() -> bool:
        answer = await live.client.get(f"/v1/reports/{report}", headers=applicant)
        return answer.status_code == 200 and answer.json()["overdue"] is True

    await eventually(overdue, timeout=20)
    await live.read(topics.MEMBER_STANDING_CHANGED, 1)
    body = {
        "participants": {"adults": 5, "youth": 0},
        "activities": [{"title": "Trade mission", "held_on": str(due - timedelta(days=10))}],
        "outcomes": {"trade_leads": 4},
        "spending": [
            {"category": "travel", "amount": {"amount_minor": 700_000, "currency": "USD"}}
        ],
        "lessons_learned": "Start the visas early.",
    }
    submitted = await live.client.post(f"/v1/reports/{report}/submit", json=body, headers=applicant)
    assert submitted.status_code == 200, submitted.text
    [first] = await live.read(topics.REPORT_SUBMITTED, 1)
    lost, restored = await live.read(topics.MEMBER_STANDING_CHANGED, 2)

    # The workflow heard nothing back (the broker forgot, say) and sends its request again:
    # the same command under a new event id. The report is not requested anew; its answers
    # go out again, the same events with the same ids.
    await live.publish(again(request))
    submissions = await live.read(topics.REPORT_SUBMITTED, 2)
    assert [record.headers for record in submissions] == [first.headers] * 2
    assert [json.loads(record.value) for record in submissions] == [json.loads(first.value)] * 2
    changes = await live.read(topics.MEMBER_STANDING_CHANGED, 3)
    assert [json.loads(record.value)["event_id"] for record in changes] == [
        json.loads(lost.value)["event_id"],
        json.loads(restored.value)["event_id"],
        json.loads(restored.value)["event_id"],
    ]
    view = (await live.client.get(f"/v1/reports/{report}", headers=applicant)).json()
    assert view["state"] == "submitted" and view["revision"] == 1


async def all_tables(summaries: list[Any]) -> dict[str, Any]:
    return {
        f"{name.value}/{by.value}": build_table(name, summaries, by).model_dump()
        for name in TableName
        for by in Dimension
    }


async def test_rebuild_from_the_topics_equals_the_live_read_model(
    live: Live, tmp_path: Path
) -> None:
    prefix = f"{live.unique}-"
    events = history(prefix=prefix)
    await live.publish(*events)
    await live.publish(*events[:5])  # redelivered
    await live.producer.send_and_wait(
        live.topic(topics.FUNDS_RESERVED), b"not json", key=b"x"
    )  # dead-lettered live, skipped by the rebuild
    await live.publish(*events[-5:])

    async def live_summaries() -> list[ApplicationSummary]:
        async with live.service.reading() as work:
            found = await live.service.summaries(work)
        return [summary for summary in found if summary.application_id.startswith(prefix)]

    event_ids = {str(envelope.event_id) for _topic, envelope in events}
    inbox = messaging.inbox

    async def everything_applied() -> bool:
        async with live.service.reading() as work:
            applied = await work.session.scalar(
                select(func.count()).select_from(inbox).where(inbox.c.event_id.in_(event_ids))
            )
        return applied == len(event_ids)

    await eventually(everything_applied, timeout=30)
    incremental = await live_summaries()
    money = build_table(TableName.MONEY, incremental, Dimension.ALL).rows[0]
    assert money.items() >= EXPECTED["money_usd"].items()
    # The plans come from the submissions and the reported figures from the latest revision.
    compared = build_table(TableName.PLANNED_VS_ACTUAL, incremental, Dimension.ALL).rows
    assert {
        row["outcome"]: (row["planned"], row["reported"], row["difference"]) for row in compared
    } == {
        outcome: figures
        for outcome, figures in EXPECTED["planned_vs_actual"]["all"].items()
        if isinstance(figures, tuple)
    }

    target = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}"
    result = await rebuild(live.settings, target)
    assert result.events_read == len(events) + 10 + 1
    assert result.invalid == 1
    assert result.duplicates == 1 + 10  # the event listed twice in history, and the resent
    assert result.applications == 4

    engine = create_engine(target)
    try:
        async with create_session_factory(engine)() as session:
            rebuilt = await ReportingStore(session).summaries()
    finally:
        await engine.dispose()
    assert [s.model_dump() for s in rebuilt] == [s.model_dump() for s in incremental]
    assert await all_tables(rebuilt) == await all_tables(incremental)

    # Rebuilding again over the same database replaces, it does not add.
    again = await rebuild(live.settings, target)
    assert again.applications == 4 and again.events_applied == result.events_applied


async def test_an_event_from_a_producer_that_does_not_own_its_topic_is_dead_lettered(
    live: Live,
) -> None:
    """Whoever can write ``grants.funds.reserved.v1`` is not disbursement: the forgery goes
    to the dead letters with the reason, and the real event with the same id still counts."""
    application = f"{live.unique}-forged"
    topic, real = reserved(application, 800_000, when=at("2027-01-21"))
    forged = real.model_copy(update={"producer": "intake"})
    await live.publish((topic, forged))
    dead = live.service.runtime.tables.dead_letters

    async def dead_lettered() -> list[Any]:
        async with live.service.reading() as work:
            rows = await work.session.execute(
                select(dead.c.reason).where(dead.c.topic == live.topic(topic))
            )
            return list(rows.scalars())

    async def forged_is_dead() -> bool:
        return bool(await dead_lettered())

    await eventually(forged_is_dead, timeout=30)
    [reason] = await dead_lettered()
    assert "producer 'intake' does not own grants.funds.reserved.v1" in reason
    await live.publish((topic, real))
    inbox = messaging.inbox

    async def real_applied() -> bool:
        async with live.service.reading() as work:
            found = await work.session.scalar(
                select(inbox.c.event_id).where(inbox.c.event_id == str(real.event_id))
            )
        return found is not None

    await eventually(real_applied, timeout=30)
