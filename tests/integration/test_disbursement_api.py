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
        seed_demo_budgets=False,
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
    response = await client.post("/v1/finance/settlements", content=body, headers=sign(body))
    assert response.status_code == 200, response.text
    assert response.json() == {"instruction_id": instruction, "disposition": "applied"}
    again = await client.post("/v1/finance/settlements", content=body, headers=sign(body))
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
        json={"amount": {"amount_minor": 500_000, "currency": "USD"}},
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
        json={"amount": {"amount_minor": 100_000, "currency": "USD"}},
        headers=officer,
    )
    assert below.status_code == 409
    assert "2,000.00 USD already committed" in below.json()["detail"]
    missing = await client.get(f"/v1/budgets/{unique}/1999", headers=officer)
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"no budget for program {unique} cycle 1999"}
    negative = await client.put(
        f"/v1/budgets/{unique}/2027",
        json={"amount": {"amount_minor": -1, "currency": "USD"}},
        headers=officer,
    )
    assert negative.status_code == 422
    assert negative.json()["detail"][0]["loc"] == ["body", "amount"]


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
    assert history["disbursed"] == {"amount_minor": 35_000, "currency": "USD"}
    [payment] = history["payments"]
    assert (payment["status"], payment["receipts"][0]["channel"]) == ("settled", "webhook")
    assert [line["kind"] for line in history["ledger"]] == ["reserve", "instruct", "settle"]

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
