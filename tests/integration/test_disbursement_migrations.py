"""Upgrading a running disbursement database keeps the ledger's idempotency keys."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from services.disbursement.persistence import DisbursementStore
from shared.contracts.topics import DISBURSEMENT_SETTLED, FUNDS_RESERVED, Topic
from shared.db import create_engine
from shared.migrations import upgrade
from tests.support.disbursement import Ledger, reserve, usd

AT = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def answer(topic: Topic, command_id: str) -> dict[str, object]:
    return {
        "result_topic": topic.name,
        "result_payload": json.dumps(
            {
                "application_id": "app-1",
                "command_id": command_id,
                "amount": {"amount_minor": 500, "currency": "USD"},
            }
        ),
    }


async def test_an_upgrade_keeps_the_first_success_of_each_key_and_forgets_the_rest(
    isolated_database_url: str,
) -> None:
    url = isolated_database_url
    await asyncio.to_thread(upgrade, "disbursement", url, "disbursement_0003")
    rows = [
        # refused first, then reserved twice under one key: the first success counts
        ("r-1", "reserve", "app-1:reservation", "refused", {"result_topic": None}, 0),
        (
            "r-2",
            "reserve",
            "app-1:reservation",
            "done",
            answer(FUNDS_RESERVED, "r-2"),
            1,
        ),
        (
            "r-3",
            "reserve",
            "app-1:reservation",
            "done",
            answer(FUNDS_RESERVED, "r-3"),
            2,
        ),
        # a payment is its instruction's business; a pending command has no answer
        ("p-1", "pay", "app-1:1", "done", answer(DISBURSEMENT_SETTLED, "p-1"), 3),
        ("p-2", "pay", "app-1:2", "pending", {"result_topic": None}, 4),
    ]
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for command_id, kind, key, outcome, result, minutes in rows:
                await connection.execute(
                    sa.text(
                        "INSERT INTO disbursement_commands (command_id, kind, idempotency_key,"
                        " application_id, outcome, result_topic, result_payload, received_at)"
                        " VALUES (:command_id, :kind, :key, 'app-1', :outcome, :result_topic,"
                        " :result_payload, :received_at)"
                    ),
                    {
                        "command_id": command_id,
                        "kind": kind,
                        "key": key,
                        "outcome": outcome,
                        "result_payload": None,
                        **result,
                        "received_at": AT + timedelta(minutes=minutes),
                    },
                )
    finally:
        await engine.dispose()

    await asyncio.to_thread(upgrade, "disbursement", url)
    ledger = await Ledger.create(url, migrate=False)
    try:
        async with ledger.sessions() as session:
            store = DisbursementStore(session)
            kept = await store.applied_key("reserve", "app-1:reservation")
            assert await store.applied_key("pay", "app-1:1") is None
        assert kept is not None and kept.command_id == "r-2"
        # A new reservation under the key gets that success, and reserves nothing.
        await ledger.budget("AUPAP", usd(10_000))
        again = reserve("app-1", usd(500), program="AUPAP", key="app-1:reservation")
        await ledger.run(again)
        [answered] = await ledger.published("app-1")
        assert answered.payload["command_id"] == again.payload.command_id
        assert (await ledger.report("AUPAP")).reserved == usd(0)
    finally:
        await ledger.close()
