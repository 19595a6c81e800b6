"""Upgrading a running intake database: unsent mail moves to the shared queue, and partner
answers already published are filed as answers, on both databases."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from shared.db import create_engine
from shared.migrations import upgrade

WHEN = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


async def execute(database_url: str, statement: str, **values: Any) -> list[Any]:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), values)
            return list(result) if result.returns_rows else []
    finally:
        await engine.dispose()


async def test_unsent_mail_and_published_partner_answers_survive_the_upgrade(
    isolated_database_url: str,
) -> None:
    url = isolated_database_url
    await asyncio.to_thread(upgrade, "intake", url, "intake_0003")
    for subject, sent_at in (("Sent already", WHEN), ("Still to send", None)):
        await execute(
            url,
            "INSERT INTO intake_notifications (application_id, kind, recipients, subject, body,"
            " created_at, sent_at, attempts, last_error) VALUES (:application_id, :kind,"
            " :recipients, :subject, :body, :created_at, :sent_at, :attempts, :last_error)",
            application_id="app-1",
            kind="partner_confirmation",
            recipients=json.dumps(["partner@nairobi.example.org"]),
            subject=subject,
            body="Please confirm",
            created_at=WHEN,
            sent_at=sent_at,
            attempts=2,
            last_error="SMTP away",
        )
    for topic in ("t1.grants.partner.confirmed.v1", "t1.grants.application.submitted.v1"):
        await execute(
            url,
            "INSERT INTO intake_outbox (event_id, topic, message_key, body, headers, created_at,"
            " sent_at, attempts) VALUES (:event_id, :topic, 'app-1', '{}', '{}', :created_at,"
            " :created_at, 1)",
            event_id=topic[-36:],
            topic=topic,
            created_at=WHEN,
        )

    await asyncio.to_thread(upgrade, "intake", url)

    [mail] = await execute(url, "SELECT * FROM intake_mail_queue")
    assert (mail.subject, mail.kind, mail.application_id) == (
        "Still to send",
        "partner_confirmation",
        "app-1",
    )
    recipients = (
        mail.recipients if isinstance(mail.recipients, list) else json.loads(mail.recipients)
    )
    assert recipients == ["partner@nairobi.example.org"]
    assert (mail.sent_at, mail.attempts, mail.last_error) == (None, 2, "SMTP away")
    filed = await execute(url, "SELECT topic, subject FROM intake_outbox ORDER BY id")
    assert [(row.topic, row.subject) for row in filed] == [
        ("t1.grants.partner.confirmed.v1", "partner-confirmation:app-1"),
        ("t1.grants.application.submitted.v1", None),
    ]
