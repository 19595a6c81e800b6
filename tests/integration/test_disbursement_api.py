"""The officer API and the signed finance webhook, over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.disbursement.app import create_app
from services.disbursement.settings import DisbursementSettings
from shared.auth import Role, mint_token
from shared.contracts.money import Money
from shared.contracts.topics import DISBURSEMENT_FAILED
from tests.support.disbursement import (
    WEBHOOK_SECRET,
    Ledger,
    http_client,
    officer_headers,
    pay,
    reserve,
    settled,
    sign,
    usd,
)


@pytest.fixture
def settings(isolated_database_url: str, unique: str) -> DisbursementSettings:
    return DisbursementSettings(
        database_url=isolated_database_url,
        topic_prefix=f"{unique}.",
        kafka_bootstrap_servers="127.0.0.1:9",  # never reached: no lifespan in these tests
        finance_webhook_secret=WEBHOOK_SECRET,
    )


@pytest.fixture
async def ledger(isolated_database_url: str, unique: str) -> AsyncIterator[Ledger]:
    ledger = await Ledger.create(isolated_database_url, prefix=f"{unique}.")
    ledger.clock.now = datetime.now(UTC)
    yield ledger
    await ledger.close()


@pytest.fixture
async def client(
    settings: DisbursementSettings, ledger: Ledger
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with http_client(app) as client:
        yield client
    await app.state.runtime.engine.dispose()


async def instructed(ledger: Ledger, program: str, app: str, amount: int = 35_000) -> str:
    await ledger.budget(program, usd(100_000))
    await ledger.run(reserve(app, usd(50_000), program=program))
    await ledger.run(pay(app, 1, usd(amount), program=program))
    return f"{app}:1"


def settlement_body(instruction_id: str, reference: str = "FIN-7", minor: int = 35_000) -> bytes:
    return json.dumps(
        {
            "outcome": "settled",
            "instruction_id": instruction_id,
            "finance_reference": reference,
            "amount": {"amount_minor": minor, "currency": "USD"},
        }
    ).encode()


async def test_a_signed_settlement_pays_once_even_when_kafka_brings_it_too(
    client: httpx.AsyncClient, ledger: Ledger, unique: str
) -> None:
    instruction = await instructed(ledger, unique, f"{unique}-a")
    body = settlement_body(instruction)
    first = datetime.now(UTC)
    response = await client.post(
        "/v1/finance/settlements", content=body, headers=sign(body, at=first)
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"instruction_id": instruction, "disposition": "applied"}
    # Another delivery of the same settlement, signed at another second: a new request (the
    # same second would make the same signature, which is answered as the same delivery).
    again = await client.post(
        "/v1/finance/settlements", content=body, headers=sign(body, at=first - timedelta(seconds=2))
    )
    assert again.json()["disposition"] == "duplicate"
    assert await ledger.finance(settled(instruction, usd(35_000), "FIN-7")) == "duplicate"
    report = await ledger.report(unique)
    assert (report.disbursed, report.in_payment) == (usd(35_000), usd(0))


async def test_an_unsigned_wrongly_signed_or_stale_webhook_call_is_refused_with_401(
    client: httpx.AsyncClient, ledger: Ledger, unique: str
) -> None:
    instruction = await instructed(ledger, unique, f"{unique}-a")
    body = settlement_body(instruction)
    stale = datetime.now(UTC) - timedelta(minutes=6)
    for headers in (
        {"Content-Type": "application/json"},
        sign(body, secret="not-the-secret"),
        sign(body, at=stale),
        sign(body + b" "),
    ):
        response = await client.post("/v1/finance/settlements", content=body, headers=headers)
        assert response.status_code == 401, response.text
    assert (await ledger.report(unique)).disbursed == usd(0)
    # Not even a malformed body is read before the signature is checked.
    assert (await client.post("/v1/finance/settlements", content=b"{")).status_code == 401


async def test_a_signed_body_that_is_not_a_settlement_is_422_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    body = json.dumps(
        {
            "outcome": "settled",
            "instruction_id": "x:1",
            "finance_reference": "F",
            "amount": {"amount_minor": 1.5, "currency": "USD"},
        }
    ).encode()
    response = await client.post("/v1/finance/settlements", content=body, headers=sign(body))
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"][:3] == ["body", "settled", "amount"]


async def test_a_settlement_for_an_unknown_instruction_is_404_and_is_reconciled(
    client: httpx.AsyncClient, settings: DisbursementSettings
) -> None:
    body = settlement_body("nobody:1", reference="FIN-404")
    response = await client.post("/v1/finance/settlements", content=body, headers=sign(body))
    assert response.status_code == 404
    report = await client.get("/v1/reconciliation", headers=officer_headers(settings))
    kinds = {(f["kind"], f["instruction_id"]) for f in report.json()["findings"]}
    assert ("unknown_settlement", "nobody:1") in kinds


async def test_a_failure_posted_to_the_webhook_schedules_a_resend(
    client: httpx.AsyncClient, ledger: Ledger, unique: str
) -> None:
    instruction = await instructed(ledger, unique, f"{unique}-a")
    body = json.dumps(
        {"outcome": "failed", "instruction_id": instruction, "reason": "account closed"}
    ).encode()
    response = await client.post("/v1/finance/settlements", content=body, headers=sign(body))
    assert response.json()["disposition"] == "retrying"


async def test_an_officer_sets_a_budget_and_reads_its_balances(
    client: httpx.AsyncClient, settings: DisbursementSettings, ledger: Ledger, unique: str
) -> None:
    officer = officer_headers(settings)
    response = await client.put(
        f"/v1/budgets/{unique}/2027",
        json={"amount": {"amount_minor": 500_000, "currency": "USD"}, "reason": "officer test"},
        headers=officer,
    )
    assert response.status_code == 200, response.text
    await ledger.run(reserve(f"{unique}-a", usd(200_000), program=unique))
    report = (await client.get(f"/v1/budgets/{unique}/2027", headers=officer)).json()
    assert report["available"] == {"amount_minor": 300_000, "currency": "USD"}
    assert report["reserved"] == {"amount_minor": 200_000, "currency": "USD"}
    listed = (await client.get("/v1/budgets", headers=officer)).json()
    assert unique in {budget["program_code"] for budget in listed}

    below = await client.put(
        f"/v1/budgets/{unique}/2027",
        json={"amount": {"amount_minor": 100_000, "currency": "USD"}, "reason": "officer test"},
        headers=officer,
    )
    assert below.status_code == 409
    assert "2,000.00 USD already committed" in below.json()["detail"]
    missing = await client.get(f"/v1/budgets/{unique}/1999", headers=officer)
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"no budget for program {unique} cycle 1999"}
    negative = await client.put(
        f"/v1/budgets/{unique}/2027",
        json={"amount": {"amount_minor": -1, "currency": "USD"}, "reason": "officer test"},
        headers=officer,
    )
    assert negative.status_code == 422
    assert negative.json()["detail"][0]["loc"] == ["body", "amount", "amount_minor"]


async def test_budgets_and_rates_come_in_pages(
    client: httpx.AsyncClient, settings: DisbursementSettings, unique: str
) -> None:
    officer = officer_headers(settings)
    for cycle in ("2026", "2027", "2028"):
        saved = await client.put(
            f"/v1/budgets/{unique}/{cycle}",
            json={"amount": {"amount_minor": 100_000, "currency": "USD"}, "reason": "officer test"},
            headers=officer,
        )
        assert saved.status_code == 200, saved.text
    for quote in ("EUR", "GBP", "JPY"):
        saved = await client.put(f"/v1/fx-rates/USD/{quote}", json={"rate": "2"}, headers=officer)
        assert saved.status_code == 200, saved.text
    for route, key in (
        ("/v1/budgets", ("program_code", "cycle")),
        ("/v1/fx-rates", ("base_currency", "quote_currency")),
    ):
        whole = (await client.get(route, params={"limit": 500}, headers=officer)).json()
        assert len(whole) >= 3
        paged = []
        for at in range(0, len(whole) + 2, 2):
            page = (
                await client.get(route, params={"limit": 2, "offset": at}, headers=officer)
            ).json()
            assert len(page) == min(2, max(0, len(whole) - at)), (route, at)
            paged += page
        assert [tuple(item[k] for k in key) for item in paged] == [
            tuple(item[k] for k in key) for item in whole
        ]
    mine = [
        budget["cycle"]
        for budget in (
            await client.get("/v1/budgets", params={"limit": 500}, headers=officer)
        ).json()
        if budget["program_code"] == unique
    ]
    assert mine == ["2026", "2027", "2028"]


async def test_budgets_are_for_program_officers_only(
    client: httpx.AsyncClient, settings: DisbursementSettings
) -> None:
    assert (await client.get("/v1/budgets")).status_code == 401
    applicant = mint_token(settings, role=Role.APPLICANT, member_id="demo-member-1")
    response = await client.get("/v1/budgets", headers={"Authorization": f"Bearer {applicant}"})
    assert response.status_code == 403


async def test_an_officer_reads_payment_history_and_reconciliation_as_csv(
    client: httpx.AsyncClient, settings: DisbursementSettings, ledger: Ledger, unique: str
) -> None:
    officer = officer_headers(settings)
    app = f"{unique}-a"
    instruction = await instructed(ledger, unique, app)
    body = settlement_body(instruction, minor=34_000)
    await client.post("/v1/finance/settlements", content=body, headers=sign(body))
    history = (await client.get(f"/v1/applications/{app}/payments", headers=officer)).json()
    assert history["disbursed"] == {"amount_minor": 0, "currency": "USD"}
    [payment] = history["payments"]
    assert (payment["status"], payment["receipts"][0]["channel"]) == ("escalated", "webhook")
    assert payment["receipts"][0]["disposition"] == "mismatch"
    assert [line["kind"] for line in history["ledger"]] == ["reserve", "instruct"]

    response = await client.get("/v1/reconciliation?format=csv", headers=officer)
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    [mismatch] = [row for row in rows if row["instruction_id"] == instruction]
    assert (mismatch["kind"], mismatch["settled_amount"]) == ("amount_mismatch", "340.00")
    unknown = await client.get(f"/v1/applications/{unique}-none/payments", headers=officer)
    assert unknown.status_code == 404


async def test_an_officer_sets_rates_and_payee_currencies(
    client: httpx.AsyncClient, settings: DisbursementSettings, unique: str
) -> None:
    officer = officer_headers(settings)
    bad = await client.put("/v1/fx-rates/USD/KES", json={"rate": "-3"}, headers=officer)
    assert bad.status_code == 422
    unknown = await client.put("/v1/fx-rates/USD/XXX", json={"rate": "3"}, headers=officer)
    assert unknown.status_code == 422
    [problem] = unknown.json()["detail"]
    assert (problem["loc"], problem["field"]) == (["path", "quote_currency"], "quote_currency")
    assert "unknown currency code 'XXX'" in problem["msg"]
    to_itself = await client.put("/v1/fx-rates/USD/USD", json={"rate": "2"}, headers=officer)
    assert to_itself.status_code == 409, to_itself.text
    assert "converts to itself at 1" in to_itself.json()["detail"]
    response = await client.put("/v1/fx-rates/USD/KES", json={"rate": "129.5"}, headers=officer)
    assert response.status_code == 200, response.text
    rates = (await client.get("/v1/fx-rates", headers=officer)).json()
    assert {"base_currency": "USD", "quote_currency": "KES", "rate": "129.5"}.items() <= (
        rates[0].items()
    )
    unknown_payee = await client.put(
        f"/v1/payees/{unique}-payee", json={"currency": "XXX"}, headers=officer
    )
    assert unknown_payee.status_code == 422
    payee = await client.put(
        f"/v1/payees/{unique}-payee", json={"currency": "KES"}, headers=officer
    )
    assert payee.json() == {"payee_reference": f"{unique}-payee", "currency": "KES"}


async def post_settlement(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await client.post("/v1/finance/settlements", content=body, headers=headers)


async def test_a_repeated_delivery_is_answered_as_before_and_applied_once(
    client: httpx.AsyncClient, ledger: Ledger, unique: str
) -> None:
    instruction = await instructed(ledger, unique, f"{unique}-a")
    body = settlement_body(instruction)
    headers = sign(body, delivery="delivery-1")
    first = await post_settlement(client, body, headers)
    # Finance did not hear the answer and delivers again: the same id, signed anew.
    again = await post_settlement(
        client, body, sign(body, delivery="delivery-1", at=datetime.now(UTC) - timedelta(seconds=2))
    )
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json() == {"instruction_id": instruction, "disposition": "applied"}
    history = await ledger.history(f"{unique}-a")
    assert len(history.payments[0].receipts) == 1
    assert (await ledger.report(unique)).disbursed == usd(35_000)


async def test_the_same_signed_settlement_replayed_within_the_window_is_not_processed_again(
    client: httpx.AsyncClient, ledger: Ledger, unique: str
) -> None:
    instruction = await instructed(ledger, unique, f"{unique}-a")
    body = settlement_body(instruction)
    captured = sign(body)
    assert (await post_settlement(client, body, captured)).status_code == 200
    # An eavesdropper sends the captured request again, under a delivery id of its own.
    replayed = await post_settlement(client, body, {**captured, "X-Grantflow-Delivery": "evil"})
    assert replayed.json() == {"instruction_id": instruction, "disposition": "applied"}
    history = await ledger.history(f"{unique}-a")
    assert len(history.payments[0].receipts) == 1


async def test_a_delivery_without_an_id_is_refused_after_its_signature(
    client: httpx.AsyncClient, ledger: Ledger, unique: str
) -> None:
    instruction = await instructed(ledger, unique, f"{unique}-a")
    body = settlement_body(instruction)
    headers = {k: v for k, v in sign(body).items() if k != "X-Grantflow-Delivery"}
    response = await post_settlement(client, body, headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "X-Grantflow-Delivery"
    assert (await ledger.report(unique)).disbursed == usd(0)


async def test_a_signed_settlement_of_a_negative_or_huge_amount_is_refused(
    client: httpx.AsyncClient, ledger: Ledger, unique: str
) -> None:
    instruction = await instructed(ledger, unique, f"{unique}-a")
    for minor in (-35_000, 2**63):
        body = settlement_body(instruction, minor=minor)
        response = await post_settlement(client, body, sign(body))
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["field"].endswith("amount_minor") or minor == 2**63
    assert (await ledger.report(unique)).disbursed == usd(0)


async def test_a_settlement_of_another_amount_is_held_for_an_officer_not_applied(
    client: httpx.AsyncClient, ledger: Ledger, settings: DisbursementSettings, unique: str
) -> None:
    instruction = await instructed(ledger, unique, f"{unique}-a")
    body = settlement_body(instruction, minor=34_000)
    response = await post_settlement(client, body, sign(body))
    assert response.status_code == 409, response.text
    assert "held for reconciliation" in response.json()["detail"]
    report = await ledger.report(unique)
    assert (report.disbursed, report.in_payment) == (usd(0), usd(35_000))
    findings = (await client.get("/v1/reconciliation", headers=officer_headers(settings))).json()
    [held] = [f for f in findings["findings"] if f["kind"] == "amount_mismatch"]
    assert held["instruction_id"] == instruction
    assert (held["instructed"]["amount_minor"], held["settled"]["amount_minor"]) == (35_000, 34_000)
    assert "not applied" in held["detail"]
    # Escalated: the workflow is told the payment failed for good (an officer must look),
    # and the instruction is not sent to finance again.
    [escalated] = await ledger.published(f"{unique}-a", DISBURSEMENT_FAILED)
    assert "held for a program officer" in escalated.payload["reason"]
    [payment] = (await ledger.history(f"{unique}-a")).payments
    assert (payment.status, payment.sends) == ("escalated", 1)


async def test_a_settlement_on_kafka_in_another_currency_is_held_too(
    ledger: Ledger, unique: str
) -> None:
    instruction = await instructed(ledger, unique, f"{unique}-a")
    notice = settled(instruction, Money(amount_minor=35_000, currency="EUR"))
    assert await ledger.finance(notice) == "mismatch"
    assert (await ledger.report(unique)).disbursed == usd(0)
    kinds = [finding.kind for finding in (await ledger.reconciliation()).findings]
    assert "amount_mismatch" in kinds


async def test_a_timestamp_of_400_digits_or_an_unknown_field_is_a_clear_refusal(
    client: httpx.AsyncClient, ledger: Ledger, unique: str
) -> None:
    instruction = await instructed(ledger, unique, f"{unique}-a")
    body = settlement_body(instruction)
    headers = {**sign(body), "X-Grantflow-Timestamp": "9" * 400}
    assert (await post_settlement(client, body, headers)).status_code in (401, 422)
    extra = json.dumps({**json.loads(body), "paid_twice": True}).encode()
    response = await post_settlement(client, extra, sign(extra))
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"].endswith("paid_twice")


async def test_a_budget_changes_only_by_entries_that_say_why(
    client: httpx.AsyncClient, settings: DisbursementSettings, unique: str
) -> None:
    officer = officer_headers(settings)
    url = f"/v1/budgets/{unique}/2027"
    unexplained = await client.put(
        url, json={"amount": {"amount_minor": 500_000, "currency": "USD"}}, headers=officer
    )
    assert unexplained.status_code == 422
    assert unexplained.json()["detail"][0]["loc"] == ["body", "reason"]
    for amount_minor, reason in ((500_000, "council grant"), (650_000, "a sponsor joined")):
        body = {"amount": {"amount_minor": amount_minor, "currency": "USD"}, "reason": reason}
        assert (await client.put(url, json=body, headers=officer)).status_code == 200
    report = (await client.get(url, headers=officer)).json()
    assert [(c["kind"], c["amount"]["amount_minor"], c["reason"]) for c in report["changes"]] == [
        ("budget", 500_000, "council grant"),
        ("budget", 150_000, "a sponsor joined"),
    ]
