"""The disbursement service on Tansu and PostgreSQL, with the finance simulator playing finance."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from services.disbursement.finance_sim import run_finance_sim
from shared.contracts.envelope import Envelope
from shared.contracts.topics import (
    DISBURSEMENT_FAILED,
    DISBURSEMENT_SETTLED,
    FUNDS_REFUSED,
    FUNDS_RESERVED,
    PAY_TRANCHE,
    PAYMENT_FAILED,
    PAYMENT_INSTRUCTED,
    PAYMENT_SETTLED,
    RESERVE_FUNDS,
    Topic,
)
from shared.contracts.workflows import ReserveFunds
from shared.settings import CommonSettings
from tests.support.disbursement import (
    Publisher,
    RunningService,
    TopicWatcher,
    finance_event,
    pay,
    reserve,
    running_service,
    settled,
    sign,
    usd,
)
from tests.support.processes import Tansu

ANSWERS = (
    FUNDS_RESERVED,
    FUNDS_REFUSED,
    PAYMENT_INSTRUCTED,
    PAYMENT_SETTLED,
    PAYMENT_FAILED,
    DISBURSEMENT_SETTLED,
    DISBURSEMENT_FAILED,
)


def names(prefix: str) -> list[str]:
    return [topic.qualified(prefix) for topic in ANSWERS]


@asynccontextmanager
async def finance_simulator(tansu: Tansu, prefix: str, **behaviour: Any) -> AsyncIterator[None]:
    settings = CommonSettings(
        kafka_bootstrap_servers=tansu.bootstrap,
        topic_prefix=prefix,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=300,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_finance_sim(settings, stop=stop, **behaviour))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def reserved(
    publisher: Publisher, watcher: TopicWatcher, command: Envelope[ReserveFunds]
) -> None:
    """Reserve, and wait for the answer as the workflow does before it pays."""
    await publisher.send(RESERVE_FUNDS, command)
    await watcher.wait_for(
        FUNDS_RESERVED.qualified(publisher.prefix), command_id=command.payload.command_id
    )


async def budget(service: RunningService, program: str, amount_minor: int) -> None:
    response = await service.client.put(
        f"/v1/budgets/{program}/2027",
        json={"amount": {"amount_minor": amount_minor, "currency": "USD"}},
        headers=service.officer,
    )
    assert response.status_code == 200, response.text


async def test_reserve_pay_and_settle_on_the_demo_budget_publishes_each_answer(
    tansu: Tansu, postgres_url: str, unique: str
) -> None:
    prefix, app = f"{unique}.", f"{unique}-app"
    async with (
        running_service(tansu.bootstrap, postgres_url, prefix) as service,
        finance_simulator(
            tansu, prefix, delay_seconds=0.05, failure_rate=0, duplicate_rate=0, seed=7
        ),
        TopicWatcher(tansu.bootstrap, names(prefix)) as watcher,
        Publisher(tansu.bootstrap, prefix) as publisher,
    ):
        # AUPAP 2027 is one of the budgets seeded for the demo.
        await reserved(publisher, watcher, reserve(app, usd(1_000_000), program="AUPAP"))
        tranche = pay(app, 1, usd(700_000), program="AUPAP")
        await publisher.send(PAY_TRANCHE, tranche)
        [answer] = await watcher.wait_for(
            DISBURSEMENT_SETTLED.qualified(prefix), command_id=tranche.payload.command_id
        )
        assert answer["payload"]["amount"] == {"amount_minor": 700_000, "currency": "USD"}
        assert answer["payload"]["finance_reference"].startswith("SIM-")
        assert answer["correlation_id"] == tranche.correlation_id

        history = await service.client.get(
            f"/v1/applications/{app}/payments", headers=service.officer
        )
        assert history.json()["disbursed"] == {"amount_minor": 700_000, "currency": "USD"}
        assert history.json()["reserved"] == {"amount_minor": 300_000, "currency": "USD"}


async def test_a_settlement_delivered_twice_and_by_webhook_pays_once(
    tansu: Tansu, postgres_url: str, unique: str
) -> None:
    prefix, app = f"{unique}.", f"{unique}-app"
    async with (
        running_service(tansu.bootstrap, postgres_url, prefix) as service,
        finance_simulator(
            tansu, prefix, delay_seconds=0.05, failure_rate=0, duplicate_rate=1, seed=7
        ),
        TopicWatcher(tansu.bootstrap, names(prefix)) as watcher,
        Publisher(tansu.bootstrap, prefix) as publisher,
    ):
        await budget(service, unique, 100_000)
        await reserved(publisher, watcher, reserve(app, usd(50_000), program=unique))
        await publisher.send(PAY_TRANCHE, pay(app, 1, usd(35_000), program=unique))
        [first, second] = await watcher.wait_for(
            PAYMENT_SETTLED.qualified(prefix), count=2, instruction_id=f"{app}:1"
        )
        assert first["payload"] == second["payload"]

        async def both_recorded() -> list[str]:
            history = await service.client.get(
                f"/v1/applications/{app}/payments", headers=service.officer
            )
            return [r["disposition"] for r in history.json()["payments"][0]["receipts"]]

        for _ in range(200):
            if len(await both_recorded()) == 2:
                break
            await asyncio.sleep(0.05)
        assert await both_recorded() == ["applied", "duplicate"]
        body = json.dumps({"outcome": "settled", **first["payload"]}).encode()
        webhook = await service.client.post(
            "/v1/finance/settlements", content=body, headers=sign(body)
        )
        assert webhook.json()["disposition"] == "duplicate"

        report = (
            await service.client.get(f"/v1/budgets/{unique}/2027", headers=service.officer)
        ).json()
        assert report["disbursed"] == {"amount_minor": 35_000, "currency": "USD"}
        assert len(watcher.seen(DISBURSEMENT_SETTLED.qualified(prefix), application_id=app)) == 1


async def test_a_payment_finance_fails_is_sent_again_and_then_settles(
    tansu: Tansu, postgres_url: str, unique: str
) -> None:
    prefix, app = f"{unique}.", f"{unique}-app"
    async with (
        running_service(
            tansu.bootstrap,
            postgres_url,
            prefix,
            retry_delay_seconds=0.2,
            deadline_scan_interval_seconds=0.1,
        ) as service,
        # Seed 1: the simulator fails the first send and settles the second.
        finance_simulator(
            tansu, prefix, delay_seconds=0.05, failure_rate=0.5, duplicate_rate=0, seed=1
        ),
        TopicWatcher(tansu.bootstrap, names(prefix)) as watcher,
        Publisher(tansu.bootstrap, prefix) as publisher,
    ):
        await budget(service, unique, 100_000)
        await reserved(publisher, watcher, reserve(app, usd(50_000), program=unique))
        command = pay(app, 1, usd(35_000), program=unique)
        await publisher.send(PAY_TRANCHE, command)
        await watcher.wait_for(
            DISBURSEMENT_SETTLED.qualified(prefix), command_id=command.payload.command_id
        )
        sends = watcher.seen(PAYMENT_INSTRUCTED.qualified(prefix), instruction_id=f"{app}:1")
        assert len(sends) == 2
        assert sends[0]["event_id"] != sends[1]["event_id"]
        assert len(watcher.seen(PAYMENT_FAILED.qualified(prefix), instruction_id=f"{app}:1")) == 1
        assert watcher.seen(DISBURSEMENT_FAILED.qualified(prefix)) == []


async def test_an_instruction_never_answered_is_sent_again_then_escalated(
    tansu: Tansu, postgres_url: str, unique: str
) -> None:
    prefix, app = f"{unique}.", f"{unique}-app"
    async with (
        running_service(
            tansu.bootstrap,
            postgres_url,
            prefix,
            settlement_deadline_seconds=0.3,
            deadline_scan_interval_seconds=0.1,
            max_payment_attempts=2,
        ) as service,
        TopicWatcher(tansu.bootstrap, names(prefix)) as watcher,
        Publisher(tansu.bootstrap, prefix) as publisher,
    ):
        await budget(service, unique, 100_000)
        await reserved(publisher, watcher, reserve(app, usd(50_000), program=unique))
        command = pay(app, 1, usd(35_000), program=unique)
        await publisher.send(PAY_TRANCHE, command)
        [failed] = await watcher.wait_for(
            DISBURSEMENT_FAILED.qualified(prefix), command_id=command.payload.command_id
        )
        assert failed["payload"]["attempts"] == 2
        assert "escalated to a program officer" in failed["payload"]["reason"]
        sends = watcher.seen(PAYMENT_INSTRUCTED.qualified(prefix), instruction_id=f"{app}:1")
        assert len(sends) == 2

        report = (await service.client.get("/v1/reconciliation", headers=service.officer)).json()
        overdue = [f for f in report["findings"] if f["instruction_id"] == f"{app}:1"]
        assert overdue[0]["kind"] == "unsettled_past_deadline"
        assert overdue[0]["status"] == "escalated"


async def test_a_settlement_for_an_unknown_instruction_goes_to_the_dead_letter_topic(
    tansu: Tansu, postgres_url: str, unique: str
) -> None:
    prefix = f"{unique}."
    dead_letters = PAYMENT_SETTLED.qualified(prefix) + ".dlq"
    async with (
        running_service(tansu.bootstrap, postgres_url, prefix) as service,
        TopicWatcher(tansu.bootstrap, [dead_letters]) as watcher,
        Publisher(tansu.bootstrap, prefix) as publisher,
    ):
        ghost = f"{unique}-ghost:1"
        await publisher.send(
            PAYMENT_SETTLED, finance_event(settled(ghost, usd(5_000), "FIN-X"), f"{unique}-ghost")
        )
        [letter] = await watcher.wait_for(dead_letters)
        assert letter["reason"] == f"invalid message: PoisonMessage: no payment instruction {ghost}"
        original = json.loads(base64.b64decode(letter["original_base64"]))
        assert original["payload"]["instruction_id"] == ghost
        report = (await service.client.get("/v1/reconciliation", headers=service.officer)).json()
        assert {"kind": "unknown_settlement", "instruction_id": ghost}.items() <= next(
            f for f in report["findings"] if f["instruction_id"] == ghost
        ).items()


async def test_reservations_racing_on_two_replicas_never_overcommit_the_budget(
    tansu: Tansu, postgres_url: str, unique: str
) -> None:
    prefix = f"{unique}."
    applications = [f"{unique}-{n}" for n in range(8)]
    async with (
        running_service(tansu.bootstrap, postgres_url, prefix) as first,
        running_service(tansu.bootstrap, postgres_url, prefix),
        TopicWatcher(tansu.bootstrap, names(prefix)) as watcher,
        Publisher(tansu.bootstrap, prefix) as publisher,
    ):
        await budget(first, unique, 100_000)
        await asyncio.gather(
            *(
                publisher.send(RESERVE_FUNDS, reserve(app, usd(30_000), program=unique))
                for app in applications
            )
        )

        def answered(topic: Topic) -> set[str]:
            # Both replicas relay the outbox, so an answer may arrive twice (same event id).
            return {body["application_id"] for body in watcher.seen(topic.qualified(prefix))}

        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            if len(answered(FUNDS_RESERVED) | answered(FUNDS_REFUSED)) == len(applications):
                break
            await asyncio.sleep(0.05)
        assert (len(answered(FUNDS_RESERVED)), len(answered(FUNDS_REFUSED))) == (3, 5)
        report = (
            await first.client.get(f"/v1/budgets/{unique}/2027", headers=first.officer)
        ).json()
        assert report["available"] == {"amount_minor": 10_000, "currency": "USD"}
