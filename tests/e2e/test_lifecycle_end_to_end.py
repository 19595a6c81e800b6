"""One application from submission to close-out through the real workflows process.

Tansu carries every message; the Temporal dev server runs the workflow; the workflows
app (worker, bridge, lifecycle API and attention list, as ``grantflow worker`` runs it)
is started in-process; stand-in services answer its commands over Kafka. A second
application's partner never answers: it reaches the officers' attention list and their
mail, and leaves the list when it is withdrawn.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.auth import Role, mint_token
from shared.contracts import topics
from shared.contracts.programs import ProgramRules
from shared.mail import FileMailer
from shared.messaging.broker import create_broker
from shared.messaging.outbox import message_headers
from tests.support.messaging import eventually, read_topic
from tests.support.processes import Tansu, TemporalDevServer, migrated_sqlite
from tests.support.workflows import (
    APPROVED_PATH,
    KafkaStandIns,
    program_rules,
    submission,
    workflows_settings,
)
from workflows.funding.worker import create_app

pytestmark = pytest.mark.timeout(120)


def quick_rules() -> ProgramRules:
    """A program whose exchange is already over and whose waits are seconds long."""
    today = datetime.now(UTC).date()
    return program_rules(
        today,
        exchange_period_start=today - timedelta(days=30),
        command_resend_after=timedelta(seconds=5),
        report_due_after=timedelta(days=2),
        report_reminders_before=[],
        report_reminders_after=[],
        report_overdue_after=timedelta(days=1),
    )


async def test_application_runs_end_to_end_over_kafka_and_temporal(
    tansu: Tansu, temporal_dev_server: TemporalDevServer, unique: str, tmp_path: Path
) -> None:
    settings = await workflows_settings(
        tansu.bootstrap,
        unique,
        temporal_address=temporal_dev_server.address,
        temporal_task_queue=f"{unique}-funding",
        database_url=await migrated_sqlite(tmp_path, "workflows"),
        officer_emails=["po@example.org"],
    )
    prefix = settings.topic_prefix
    today = datetime.now(UTC).date()
    rules = quick_rules()
    application = submission(
        rules=rules,
        exchange_start=today - timedelta(days=3),
        exchange_end=today - timedelta(days=1),
    )
    stuck = submission(
        rules=rules.model_copy(update={"partner_confirmation_period": timedelta(seconds=2)})
    )
    officer = {"Authorization": f"Bearer {mint_token(settings, role=Role.PROGRAM_OFFICER)}"}

    stand_ins = KafkaStandIns(settings)
    stand_ins.silent_partners.add(stuck.application_id)
    publisher, _ = create_broker(settings, client_id=f"{unique}-intake")
    mailer = FileMailer(tmp_path / "mail")
    app = create_app(settings, mailer=mailer)
    async with app.router.lifespan_context(app):
        await stand_ins.start()
        await publisher.start()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://workflows") as api:
                for event in (application, stuck):
                    await publisher.publish(
                        event.model_dump_json().encode(),
                        topic=topics.APPLICATION_SUBMITTED.qualified(prefix),
                        key=event.application_id.encode(),
                        headers=message_headers(event),
                    )

                async def closed() -> bool:
                    response = await api.get(
                        f"/v1/lifecycle/{application.application_id}", headers=officer
                    )
                    return response.status_code == 200 and response.json()["stage"] == "closed"

                await eventually(closed, timeout=60)
                view = (
                    await api.get(f"/v1/lifecycle/{application.application_id}", headers=officer)
                ).json()
                assert view["amounts"]["paid"] == {"amount_minor": 1_000_000, "currency": "USD"}
                assert view["finished"] is True

                async def listed_as_stuck() -> bool:
                    response = await api.get(
                        "/v1/lifecycle",
                        params={"stage": "partner_unconfirmed", "stuck_for_days": 0},
                        headers=officer,
                    )
                    found = response.json()["applications"]
                    return any(item["application_id"] == stuck.application_id for item in found)

                await eventually(listed_as_stuck, timeout=20)

                async def attention() -> list[dict[str, Any]]:
                    response = await api.get("/v1/attention", headers=officer)
                    items: list[dict[str, Any]] = response.json()["items"]
                    return [i for i in items if i["application_id"] == stuck.application_id]

                async def waits_for_an_officer() -> bool:
                    return [i["kind"] for i in await attention()] == ["partner_unconfirmed"]

                await eventually(waits_for_an_officer, timeout=20)

                async def mailed() -> bool:
                    return len(mailer.sent()) == 1

                await eventually(mailed, timeout=20)
                withdrawn = await api.post(
                    f"/v1/lifecycle/{stuck.application_id}/withdraw",
                    json={"reason": "the partner city never answered"},
                    headers=officer,
                )
                assert withdrawn.status_code == 200, withdrawn.text

                async def cleared() -> bool:
                    return await attention() == []

                await eventually(cleared, timeout=20)
                ready = await api.get("/readyz")
                assert ready.status_code == 200, ready.text
        finally:
            await publisher.stop()
            await stand_ins.stop()

    statuses = [
        json.loads(record.value)["payload"]
        for record in await read_topic(
            tansu.bootstrap, topics.APPLICATION_STATUS_CHANGED.qualified(prefix), 16
        )
    ]
    mine = sorted(
        (s for s in statuses if s["application_id"] == application.application_id),
        key=lambda s: s["sequence"],
    )
    assert [s["stage"] for s in mine] == list(APPROVED_PATH)
