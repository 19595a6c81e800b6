"""The officers' attention list: escalations become items and mail, status events clear them.

On real Tansu and on SQLite and PostgreSQL: the workflows process's attention consumers,
its mail relay (to ``.eml`` files) and ``GET /v1/attention``.
"""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker
from sqlalchemy import func, select

from shared.auth import Role, mint_token
from shared.contracts import topics
from shared.contracts.disbursement import RefundOverdue, RefundReceived
from shared.contracts.envelope import Envelope, new_envelope
from shared.contracts.money import Money
from shared.contracts.topics import Topic
from shared.contracts.workflows import ApplicationStatusChanged, EscalatedToOfficer
from shared.mail import FileMailer
from shared.migrations import upgrade
from shared.service import ServiceRuntime, build_runtime, create_service_app
from tests.support.messaging import eventually
from tests.support.processes import Tansu
from tests.support.workflows import publish, workflows_settings
from workflows.attention.api import router
from workflows.attention.service import AttentionService
from workflows.funding.worker import attention_list
from workflows.persistence import messaging, metadata
from workflows.settings import WorkflowsSettings

OFFICERS = ["po@example.org", "lead-po@example.org"]
T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def escalated(
    application_id: str, kind: Any, sequence: int, *, program: str = "AUPAP", minutes: int = 0
) -> Envelope[EscalatedToOfficer]:
    return new_envelope(
        EscalatedToOfficer(
            application_id=application_id,
            stage="partner_unconfirmed" if kind == "partner_unconfirmed" else "review",
            reason=f"{kind} for {application_id}",
            kind=kind,
            sequence=sequence,
            program_code=program,
        ),
        producer="workflows",
        application_id=application_id,
        occurred_at=T0 + timedelta(minutes=minutes),
    )


def status(
    application_id: str, sequence: int, waiting: list[Any], *, stage: str = "review"
) -> Envelope[ApplicationStatusChanged]:
    return new_envelope(
        ApplicationStatusChanged(
            application_id=application_id,
            member_id="demo-member-1",
            program_code="AUPAP",
            stage=stage,
            previous_stage=None,
            sequence=sequence,
            waiting_for_officer=waiting,
        ),
        producer="workflows",
        application_id=application_id,
        occurred_at=T0 + timedelta(minutes=sequence),
    )


async def migrated(database_url: str) -> None:
    await asyncio.to_thread(upgrade, "workflows", database_url)


# -- the whole flow on Tansu ----------------------------------------------------------------


@dataclass
class LiveAttention:
    client: httpx.AsyncClient
    settings: WorkflowsSettings
    mailer: FileMailer
    broker: KafkaBroker

    def auth(self, role: Role = Role.PROGRAM_OFFICER, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(self.settings, role=role, **claims)}"}

    async def publish(self, topic: Topic, *envelopes: Envelope[Any]) -> None:
        await publish(self.broker, self.settings.topic_prefix, topic, *envelopes)

    async def items(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.client.get("/v1/attention", params=params, headers=self.auth())
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["items"]
        return found


@pytest.fixture
async def live(
    tansu: Tansu, isolated_database_url: str, unique: str, tmp_path: Path
) -> AsyncIterator[LiveAttention]:
    settings = await workflows_settings(
        tansu.bootstrap, unique, database_url=isolated_database_url, officer_emails=OFFICERS
    )
    await migrated(isolated_database_url)
    runtime = build_runtime(settings, metadata, messaging)
    mailer = FileMailer(tmp_path / "mail")
    service = attention_list(runtime, settings, mailer=mailer)
    app = create_service_app(
        runtime, service, title="attention", description="test", routers=[router]
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://workflows") as client:
            yield LiveAttention(client, settings, mailer, runtime.broker)


async def test_an_escalation_becomes_an_item_and_a_mail_and_a_later_status_clears_it(
    live: LiveAttention,
) -> None:
    await live.publish(
        topics.APPLICATION_STATUS_CHANGED,
        status("app-1", 3, ["partner_unconfirmed"], stage="partner_unconfirmed"),
    )
    await live.publish(
        topics.ESCALATED_TO_OFFICER,
        escalated("app-1", "partner_unconfirmed", 3),
        escalated("app-2", "payment_failing", 7, program="CITIZEN", minutes=5),
    )

    async def both_listed() -> bool:
        return len(await live.items()) == 2

    await eventually(both_listed, timeout=30)
    first, second = await live.items()
    assert first["application_id"] == "app-1"
    assert first["program_code"] == "AUPAP"
    assert first["kind"] == "partner_unconfirmed"
    assert first["stage"] == "partner_unconfirmed"
    assert first["reason"] == "partner_unconfirmed for app-1"
    assert first["raised_at"].startswith("2027-03-01T09:00:00")
    assert first["cleared_at"] is None
    assert second["application_id"] == "app-2"
    assert [i["application_id"] for i in await live.items(program="CITIZEN")] == ["app-2"]
    assert [i["application_id"] for i in await live.items(kind="partner_unconfirmed")] == ["app-1"]

    async def mailed() -> bool:
        return len(live.mailer.sent()) == 2

    await eventually(mailed, timeout=30)
    mails = [email.message_from_bytes(path.read_bytes()) for path in live.mailer.sent()]
    about_app_1 = next(m for m in mails if m["X-Grantflow-Application"] == "app-1")
    assert sorted(about_app_1["To"].split(", ")) == sorted(OFFICERS)
    assert about_app_1["Subject"] == "Application app-1 (AUPAP): the partner city never confirmed"

    # The partner confirmed: the next status event no longer lists the kind.
    await live.publish(topics.APPLICATION_STATUS_CHANGED, status("app-1", 4, []))

    async def cleared() -> bool:
        return [i["application_id"] for i in await live.items()] == ["app-2"]

    await eventually(cleared, timeout=30)
    (resolved,) = await live.items(include_cleared="true", kind="partner_unconfirmed")
    assert resolved["cleared_at"].startswith("2027-03-01T09:04:00")


async def test_only_officers_read_the_attention_list_and_pages_are_bounded(
    live: LiveAttention,
) -> None:
    assert (await live.client.get("/v1/attention")).status_code == 401
    applicant = live.auth(Role.APPLICANT, member_id="demo-member-1")
    assert (await live.client.get("/v1/attention", headers=applicant)).status_code == 403
    admin = await live.client.get("/v1/attention", headers=live.auth(Role.ADMIN))
    assert admin.status_code == 200
    assert admin.json() == {"items": [], "total": 0, "limit": 100, "offset": 0}
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"kind": "bored"}):
        response = await live.client.get("/v1/attention", params=params, headers=live.auth())
        assert response.status_code == 422, params


# -- the order of events, on the use cases ------------------------------------------------


@pytest.fixture
async def attention(isolated_database_url: str) -> AsyncIterator[AttentionService]:
    await migrated(isolated_database_url)
    settings = WorkflowsSettings(
        environment="test", database_url=isolated_database_url, officer_emails=OFFICERS
    )
    runtime = build_runtime(settings, metadata, messaging)
    try:
        yield AttentionService(runtime, settings)
    finally:
        await runtime.engine.dispose()


async def handle(service: AttentionService, *events: Envelope[Any]) -> None:
    for event in events:
        async with service.work(event) as work:
            if isinstance(event.payload, EscalatedToOfficer):
                await service.escalated(work, event)
            else:
                await service.status_changed(work, event)


async def listed(service: AttentionService) -> list[tuple[str, bool]]:
    async with service.reading() as work:
        page = await service.attention(work, include_cleared=True)
    return [(item.kind, item.cleared_at is None) for item in page.items]


async def mails_queued(runtime: ServiceRuntime) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(runtime.tables.mail)) or 0)


async def test_events_arriving_out_of_order_leave_the_list_right(
    attention: AttentionService,
) -> None:
    # A status event that already resolved the escalation overtook it (two topics).
    await handle(attention, status("app-3", 4, []), escalated("app-3", "partner_unconfirmed", 3))
    # An older status arriving late changes nothing: the newer one has spoken.
    await handle(attention, status("app-3", 2, ["reviewers_short"]))
    await handle(attention, escalated("app-3", "reviewers_short", 3, minutes=1))
    assert await listed(attention) == [("partner_unconfirmed", False), ("reviewers_short", False)]
    assert await mails_queued(attention.runtime) == 0

    # Only a status event after the escalation can resolve it.
    await handle(attention, escalated("app-3", "reviews_late", 5, minutes=2))
    await handle(attention, status("app-3", 5, []))
    assert (await listed(attention))[-1] == ("reviews_late", True)
    await handle(attention, status("app-3", 6, ["reviews_late"]))
    assert (await listed(attention))[-1] == ("reviews_late", True)
    await handle(attention, status("app-3", 7, []))
    assert (await listed(attention))[-1] == ("reviews_late", False)
    assert await mails_queued(attention.runtime) == 1


# -- refunds: raised and cleared by disbursement, not by the lifecycle -------------------------


def usd(minor: int) -> Money:
    return Money(amount_minor=minor, currency="USD")


def refund_overdue(application_id: str, *, minutes: int = 0) -> Envelope[RefundOverdue]:
    return new_envelope(
        RefundOverdue(
            application_id=application_id,
            program_code="CITIZEN",
            cycle="2027",
            refund_id=f"{application_id}:refund:underspend",
            amount=usd(27_000),
            outstanding=usd(27_000),
            reminders=2,
            reason="27,000.00 USD is not received after 2 reminder(s)",
        ),
        producer="disbursement",
        application_id=application_id,
        occurred_at=T0 + timedelta(minutes=minutes),
    )


def refund_received(
    application_id: str, amount: int, still_due: int, *, minutes: int
) -> Envelope[RefundReceived]:
    return new_envelope(
        RefundReceived(
            application_id=application_id,
            refund_id=f"{application_id}:refund:underspend",
            amount=usd(amount),
            received=usd(27_000 - still_due),
            outstanding=usd(still_due),
            refund_due=usd(still_due),
            finance_reference=f"FIN-{minutes}",
        ),
        producer="disbursement",
        application_id=application_id,
        occurred_at=T0 + timedelta(minutes=minutes),
    )


async def test_an_overdue_refund_waits_for_an_officer_until_it_is_received_in_full(
    attention: AttentionService,
) -> None:
    async with attention.work() as work:
        await attention.refund_overdue(work, refund_overdue("app-9"))
    async with attention.reading() as work:
        [item] = (await attention.attention(work, kind="refund_overdue")).items
    assert (item.application_id, item.program_code, item.stage) == (
        "app-9",
        "CITIZEN",
        "refund_due",
    )
    assert "not received after 2 reminder(s)" in item.reason
    assert await mails_queued(attention.runtime) == 1

    # The lifecycle's status events never list a refund as waiting: they leave it alone.
    await handle(attention, status("app-9", 12, [], stage="closed"))
    async with attention.work() as work:
        await attention.refund_received(work, refund_received("app-9", 7_000, 20_000, minutes=20))
    assert await listed(attention) == [("refund_overdue", True)]

    async with attention.work() as work:
        await attention.refund_received(work, refund_received("app-9", 20_000, 0, minutes=30))
    assert await listed(attention) == [("refund_overdue", False)]
    async with attention.reading() as work:
        [cleared] = (await attention.attention(work, include_cleared=True)).items
    assert cleared.cleared_at == T0 + timedelta(minutes=30)


async def test_a_refund_overdue_on_the_topic_is_listed_and_its_receipt_clears_it(
    live: LiveAttention,
) -> None:
    await live.publish(topics.REFUND_OVERDUE, refund_overdue("app-7"))

    async def listed_open() -> bool:
        return [i["kind"] for i in await live.items()] == ["refund_overdue"]

    await eventually(listed_open, timeout=30)

    async def mailed() -> bool:
        return len(live.mailer.sent()) == 1

    await eventually(mailed, timeout=30)
    [mail] = [email.message_from_bytes(path.read_bytes()) for path in live.mailer.sent()]
    assert " ".join(mail["Subject"].split()) == (  # a long subject is folded
        "Application app-7 (CITIZEN): a refund is still due after the last reminder"
    )

    await live.publish(topics.REFUND_RECEIVED, refund_received("app-7", 27_000, 0, minutes=5))

    async def cleared() -> bool:
        return await live.items() == []

    await eventually(cleared, timeout=30)
