"""Collecting refunds on SQLite and PostgreSQL: the request to finance, finance's answers by
Kafka and by the signed webhook, the ledger, the reminders and the escalation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.disbursement.app import create_app
from services.disbursement.settings import DisbursementSettings
from shared.contracts.topics import (
    FINANCE_REFUND_REQUESTED,
    REFUND_OVERDUE,
    REFUND_RECEIVED,
    REFUND_REQUESTED,
)
from tests.support.disbursement import (
    WEBHOOK_SECRET,
    Ledger,
    http_client,
    not_collected,
    officer_headers,
    pay,
    received,
    refund,
    reserve,
    settled,
    sign,
    usd,
)

REMINDER_SECONDS = 600


@pytest.fixture
async def ledger(isolated_database_url: str, unique: str) -> AsyncIterator[Ledger]:
    ledger = await Ledger.create(
        isolated_database_url,
        prefix=f"{unique}.",
        refund_reminder_seconds=REMINDER_SECONDS,
        retry_delay_seconds=5,
        max_refund_reminders=2,
    )
    # The webhook checks signatures against the wall clock.
    ledger.clock.now = datetime.now(UTC)
    yield ledger
    await ledger.close()


async def refund_asked(ledger: Ledger, program: str, asked: int = 30_000) -> tuple[str, str]:
    """An application paid 350.00 of a 500.00 award, asked to pay ``asked`` back; its id
    and the refund's."""
    app = f"{program}-a"
    await ledger.budget(program, usd(100_000))
    await ledger.run(reserve(app, usd(50_000), program=program))
    await ledger.run(pay(app, 1, usd(35_000), program=program))
    await ledger.finance(settled(f"{app}:1", usd(35_000)))
    command = refund(app, usd(asked), program=program)
    await ledger.run(command)
    return app, command.payload.idempotency_key


async def test_a_refund_is_asked_of_finance_and_its_receipt_makes_the_money_available_again(
    ledger: Ledger, unique: str
) -> None:
    app, refund_id = await refund_asked(ledger, unique)
    [request] = await ledger.published(app, FINANCE_REFUND_REQUESTED)
    assert request.payload["refund_id"] == refund_id
    assert request.payload["amount"] == {"amount_minor": 30_000, "currency": "USD"}
    assert request.payload["outstanding"] == {"amount_minor": 30_000, "currency": "USD"}
    assert request.payload["payer_reference"] == "payee-1"
    assert request.payload["reminder"] == 0
    [requested] = await ledger.published(app, REFUND_REQUESTED)
    assert request.envelope["correlation_id"] == requested.envelope["correlation_id"]
    report = await ledger.report(unique)
    assert (report.available, report.refund_due) == (usd(50_000), usd(30_000))

    assert await ledger.refund_answer(received(refund_id, usd(30_000), "FIN-R1")) == "applied"
    # The same receipt again, on Kafka and by the webhook: counted once.
    assert await ledger.refund_answer(received(refund_id, usd(30_000), "FIN-R1")) == "duplicate"
    again = await ledger.refund_answer(received(refund_id, usd(30_000), "FIN-R1"), "webhook")
    assert again == "duplicate"

    report = await ledger.report(unique)
    assert (report.available, report.disbursed, report.refund_due) == (
        usd(80_000),
        usd(5_000),
        usd(0),
    )
    [announced] = await ledger.published(app, REFUND_RECEIVED)
    assert announced.payload["amount"] == {"amount_minor": 30_000, "currency": "USD"}
    assert announced.payload["refund_due"] == {"amount_minor": 0, "currency": "USD"}
    history = await ledger.history(app)
    [collected] = history.refunds
    assert (collected.status, collected.received, collected.outstanding) == (
        "received",
        usd(30_000),
        usd(0),
    )
    assert [r.disposition for r in collected.receipts] == ["applied", "duplicate", "duplicate"]
    assert [line.kind for line in history.ledger][-1] == "refund_received"

    # Received in full: no reminder is due any more, whatever the time.
    ledger.clock.advance(seconds=REMINDER_SECONDS * 10)
    assert await ledger.remind() == 0


async def test_a_partial_refund_leaves_the_rest_due_and_reminded(
    ledger: Ledger, unique: str
) -> None:
    app, refund_id = await refund_asked(ledger, unique)
    assert await ledger.refund_answer(received(refund_id, usd(12_000), "FIN-R1")) == "applied"
    [part] = await ledger.published(app, REFUND_RECEIVED)
    assert part.payload["outstanding"] == {"amount_minor": 18_000, "currency": "USD"}
    assert (await ledger.report(unique)).refund_due == usd(18_000)

    ledger.clock.advance(seconds=REMINDER_SECONDS + 1)
    assert await ledger.remind() == 1
    first, reminder = await ledger.published(app, FINANCE_REFUND_REQUESTED)
    assert reminder.payload["reminder"] == 1
    assert reminder.payload["outstanding"] == {"amount_minor": 18_000, "currency": "USD"}
    assert reminder.event_id != first.event_id

    # More than is outstanding is held, not applied; the rest then completes it.
    assert await ledger.refund_answer(received(refund_id, usd(18_001), "FIN-R2")) == "mismatch"
    assert await ledger.refund_answer(received(refund_id, usd(18_000), "FIN-R3")) == "applied"
    report = await ledger.report(unique)
    assert (report.available, report.refund_due) == (usd(80_000), usd(0))
    [due] = (await ledger.history(app)).refunds
    assert due.status == "received"


async def test_a_refund_never_received_is_reminded_then_escalated_and_still_counts_later(
    ledger: Ledger, unique: str
) -> None:
    app, refund_id = await refund_asked(ledger, unique)
    for _ in range(2):
        ledger.clock.advance(seconds=REMINDER_SECONDS + 1)
        assert await ledger.remind() == 1
    assert await ledger.published(app, REFUND_OVERDUE) == []
    ledger.clock.advance(seconds=REMINDER_SECONDS + 1)
    assert await ledger.remind() == 1
    [overdue] = await ledger.published(app, REFUND_OVERDUE)
    assert overdue.payload["refund_id"] == refund_id
    assert overdue.payload["reminders"] == 2
    assert overdue.payload["outstanding"] == {"amount_minor": 30_000, "currency": "USD"}
    assert "not received after 2 reminder(s)" in overdue.payload["reason"]
    # Escalated once: the clock asks no more.
    ledger.clock.advance(seconds=REMINDER_SECONDS * 10)
    assert await ledger.remind() == 0
    requests = await ledger.published(app, FINANCE_REFUND_REQUESTED)
    assert [p.payload["reminder"] for p in requests] == [0, 1, 2]

    recon = await ledger.reconciliation()
    [outstanding] = [f for f in recon.findings if f.kind == "refund_outstanding"]
    assert (outstanding.instruction_id, outstanding.status) == (refund_id, "overdue")
    assert "escalated" in outstanding.detail
    [total] = recon.refunds
    assert (total.requested, total.received, total.due) == (usd(30_000), usd(0), usd(30_000))

    assert await ledger.refund_answer(received(refund_id, usd(30_000), "FIN-R9")) == "applied"
    assert (await ledger.report(unique)).refund_due == usd(0)
    recon = await ledger.reconciliation()
    assert [f for f in recon.findings if f.kind == "refund_outstanding"] == []
    assert recon.refunds[0].due == usd(0)


async def test_finance_failing_to_collect_asks_again_soon_then_escalates(
    ledger: Ledger, unique: str
) -> None:
    app, refund_id = await refund_asked(ledger, unique)
    assert await ledger.refund_answer(not_collected(refund_id)) == "retrying"
    ledger.clock.advance(seconds=6)  # the retry delay, not the reminder period
    assert await ledger.remind() == 1
    assert await ledger.refund_answer(not_collected(refund_id)) == "retrying"
    ledger.clock.advance(seconds=6)
    assert await ledger.remind() == 1
    assert await ledger.refund_answer(not_collected(refund_id, "account closed")) == "failed"
    [overdue] = await ledger.published(app, REFUND_OVERDUE)
    assert (
        "finance could not collect the refund after 2 reminder(s): account closed"
        in (overdue.payload["reason"])
    )
    assert await ledger.refund_answer(not_collected(refund_id)) == "ignored"
    assert (await ledger.report(unique)).refund_due == usd(30_000)


async def test_a_refund_of_nothing_asks_finance_for_nothing_and_a_repeat_asks_once(
    ledger: Ledger, unique: str
) -> None:
    await ledger.budget(unique, usd(100_000))
    app = f"{unique}-a"
    await ledger.run(reserve(app, usd(50_000), program=unique))
    await ledger.run(refund(app, usd(10_000), program=unique))  # nothing paid yet
    assert await ledger.published(app, FINANCE_REFUND_REQUESTED) == []

    await refund_asked(ledger, f"{unique}x")
    paid_app = f"{unique}x-a"
    [command] = [
        p for p in await ledger.published(paid_app, REFUND_REQUESTED) if p.subject is not None
    ]
    assert command.payload["amount"]["amount_minor"] == 30_000
    assert len(await ledger.published(paid_app, FINANCE_REFUND_REQUESTED)) == 1


async def test_a_receipt_for_an_unknown_refund_is_dead_lettered_and_reconciled(
    ledger: Ledger, unique: str
) -> None:
    ghost = f"{unique}-ghost:refund:x"
    assert await ledger.refund_answer(received(ghost, usd(100), "FIN-G")) == "dead-lettered"
    assert await ledger.refund_answer(received(ghost, usd(100), "FIN-G"), "webhook") == "unknown"
    recon = await ledger.reconciliation()
    assert [f.kind for f in recon.findings if f.instruction_id == ghost] == ["unknown_refund"]


# The signed webhook ---------------------------------------------------------------------------


@pytest.fixture
async def client(
    isolated_database_url: str, unique: str, ledger: Ledger
) -> AsyncIterator[httpx.AsyncClient]:
    settings = DisbursementSettings(
        database_url=isolated_database_url,
        topic_prefix=f"{unique}.",
        kafka_bootstrap_servers="127.0.0.1:9",  # never reached: no lifespan in these tests
        finance_webhook_secret=WEBHOOK_SECRET,
    )
    app = create_app(settings)
    async with http_client(app) as client:
        client.headers.update(officer_headers(settings))
        yield client
    await app.state.runtime.engine.dispose()


def receipt_body(refund_id: str, minor: int, reference: str, currency: str = "USD") -> bytes:
    return json.dumps(
        {
            "outcome": "received",
            "refund_id": refund_id,
            "finance_reference": reference,
            "amount": {"amount_minor": minor, "currency": currency},
        }
    ).encode()


async def test_a_signed_refund_receipt_clears_refund_due_once_however_often_it_is_delivered(
    client: httpx.AsyncClient, ledger: Ledger, unique: str
) -> None:
    app, refund_id = await refund_asked(ledger, unique)
    body = receipt_body(refund_id, 30_000, "FIN-W1")
    headers = sign(body, delivery="d-1")
    first = await client.post("/v1/finance/refunds", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"refund_id": refund_id, "disposition": "applied"}
    repeated = await client.post("/v1/finance/refunds", content=body, headers=headers)
    assert repeated.json() == first.json()
    # Another delivery of the same receipt, signed at another moment.
    later = sign(body, at=datetime.now(UTC) - timedelta(seconds=2))
    other_delivery = await client.post("/v1/finance/refunds", content=body, headers=later)
    assert other_delivery.json()["disposition"] == "duplicate"
    assert await ledger.refund_answer(received(refund_id, usd(30_000), "FIN-W1")) == "duplicate"

    payments = (await client.get(f"/v1/applications/{app}/payments")).json()
    assert payments["refund_due"] == {"amount_minor": 0, "currency": "USD"}
    assert payments["refunds"][0]["status"] == "received"
    assert [r["channel"] for r in payments["refunds"][0]["receipts"]] == [
        "webhook",
        "webhook",
        "kafka",
    ]


async def test_the_refund_webhook_refuses_what_it_cannot_trust_or_apply(
    client: httpx.AsyncClient, ledger: Ledger, unique: str
) -> None:
    _, refund_id = await refund_asked(ledger, unique)
    body = receipt_body(refund_id, 30_000, "FIN-W2")
    assert (await client.post("/v1/finance/refunds", content=body)).status_code == 401
    forged = sign(body, secret="not-the-secret")
    assert (await client.post("/v1/finance/refunds", content=body, headers=forged)).status_code == (
        401
    )
    euros = receipt_body(refund_id, 30_000, "FIN-W3", currency="EUR")
    held = await client.post("/v1/finance/refunds", content=euros, headers=sign(euros))
    assert held.status_code == 409, held.text
    unknown = receipt_body(f"{unique}-nobody:refund:x", 100, "FIN-W4")
    missing = await client.post("/v1/finance/refunds", content=unknown, headers=sign(unknown))
    assert missing.status_code == 404
    settlement = json.dumps({"outcome": "settled", "refund_id": refund_id}).encode()
    invalid = await client.post("/v1/finance/refunds", content=settlement, headers=sign(settlement))
    assert invalid.status_code == 422

    failure = json.dumps(
        {"outcome": "failed", "refund_id": refund_id, "reason": "no mandate"}
    ).encode()
    answer = await client.post("/v1/finance/refunds", content=failure, headers=sign(failure))
    assert answer.json() == {"refund_id": refund_id, "disposition": "retrying"}

    recon = (await client.get("/v1/reconciliation")).json()
    kinds = sorted(f["kind"] for f in recon["findings"] if f["kind"].startswith(("refund", "unk")))
    assert kinds == ["refund_held", "refund_outstanding", "unknown_refund"]
    assert recon["refunds"] == [
        {
            "currency": "USD",
            "requested": {"amount_minor": 30_000, "currency": "USD"},
            "received": {"amount_minor": 0, "currency": "USD"},
            "due": {"amount_minor": 30_000, "currency": "USD"},
        }
    ]
    csv_text = (await client.get("/v1/reconciliation", params={"format": "csv"})).text
    assert f"refund_outstanding,{refund_id}," in csv_text
