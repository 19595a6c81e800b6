"""The disbursement service on Tansu and a real database, the finance simulator playing finance.

The retry contract (disbursement alone retries finance) runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from services.disbursement.finance_sim import run_finance_sim
from shared.contracts.envelope import Envelope, new_envelope
from shared.contracts.intake import ProgramCycleOpened, program_cycle_key
from shared.contracts.money import Money
from shared.contracts.topics import (
    DISBURSEMENT_FAILED,
    DISBURSEMENT_SETTLED,
    FINANCE_REFUND_FAILED,
    FINANCE_REFUND_RECEIVED,
    FINANCE_REFUND_REQUESTED,
    FUNDS_REFUSED,
    FUNDS_RESERVED,
    PAY_TRANCHE,
    PAYMENT_FAILED,
    PAYMENT_INSTRUCTED,
    PAYMENT_SETTLED,
    PROGRAM_CYCLE_OPENED,
    REFUND_OVERDUE,
    REFUND_RECEIVED,
    REQUEST_REFUND,
    RESERVE_FUNDS,
    Topic,
)
from shared.contracts.workflows import PayTranche, ReserveFunds
from shared.settings import CommonSettings
from tests.support.disbursement import (
    Publisher,
    RunningService,
    TopicWatcher,
    finance_event,
    pay,
    refund,
    reserve,
    running_service,
    settled,
    sign,
    usd,
)
from tests.support.messaging import eventually, on_test_broker
from tests.support.processes import Tansu

ANSWERS = (
    FUNDS_RESERVED,
    FUNDS_REFUSED,
    PAYMENT_INSTRUCTED,
    PAYMENT_SETTLED,
    PAYMENT_FAILED,
    DISBURSEMENT_SETTLED,
    DISBURSEMENT_FAILED,
    FINANCE_REFUND_REQUESTED,
    FINANCE_REFUND_RECEIVED,
    FINANCE_REFUND_FAILED,
    REFUND_RECEIVED,
    REFUND_OVERDUE,
)


def names(prefix: str) -> list[str]:
    return [topic.qualified(prefix) for topic in ANSWERS]


@asynccontextmanager
async def finance_simulator(tansu: Tansu, prefix: str, **behaviour: Any) -> AsyncIterator[None]:
    settings = CommonSettings(**on_test_broker(tansu.bootstrap, prefix))
    stop = asyncio.Event()
    task = asyncio.create_task(run_finance_sim(settings, stop=stop, **behaviour))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


def sends_of(watcher: TopicWatcher, prefix: str, instruction_id: str) -> list[dict[str, Any]]:
    """Every instruction sent to finance for ``instruction_id``."""
    return watcher.distinct(PAYMENT_INSTRUCTED.qualified(prefix), instruction_id=instruction_id)


async def reserved(
    publisher: Publisher, watcher: TopicWatcher, command: Envelope[ReserveFunds]
) -> None:
    """Reserve, and wait for the answer as the workflow does before it pays."""
    await publisher.send(RESERVE_FUNDS, command)
    await watcher.wait_for(
        FUNDS_RESERVED.qualified(publisher.prefix), command_id=command.payload.command_id
    )


async def dispositions(service: RunningService, app: str, count: int) -> list[str]:
    """What finance's answers about tranche 1 did, once ``count`` of them are recorded."""

    async def recorded() -> list[str]:
        history = await service.client.get(
            f"/v1/applications/{app}/payments", headers=service.officer
        )
        return [r["disposition"] for r in history.json()["payments"][0]["receipts"]]

    for _ in range(200):
        if len(await recorded()) >= count:
            break
        await asyncio.sleep(0.05)
    return await recorded()


async def budget(service: RunningService, program: str, amount_minor: int) -> None:
    response = await service.client.put(
        f"/v1/budgets/{program}/2027",
        json={
            "amount": {"amount_minor": amount_minor, "currency": "USD"},
            "reason": "officer test",
        },
        headers=service.officer,
    )
    assert response.status_code == 200, response.text


RETRYING = {
    "retry_delay_seconds": 0.2,
    "deadline_scan_interval_seconds": 0.1,
    "settlement_deadline_seconds": 30,
    "max_payment_attempts": 3,
}


@dataclass
class Paying:
    """Tranche 1 of 350.00 USD instructed, a finance simulator answering."""

    service: RunningService
    watcher: TopicWatcher
    publisher: Publisher
    app: str
    command: Envelope[PayTranche]

    @property
    def instruction_id(self) -> str:
        return f"{self.app}:1"

    def seen(self, topic: Topic, **payload: Any) -> list[dict[str, Any]]:
        """Each event on ``topic`` once."""
        return self.watcher.distinct(topic.qualified(self.publisher.prefix), **payload)

    async def wait_for(self, topic: Topic, count: int = 1, **payload: Any) -> list[dict[str, Any]]:
        """Wait for ``count`` events on ``topic``; each event once."""
        await self.watcher.wait_for(topic.qualified(self.publisher.prefix), count=count, **payload)
        return self.seen(topic, **payload)

    def sends(self) -> list[dict[str, Any]]:
        return sends_of(self.watcher, self.publisher.prefix, self.instruction_id)


@asynccontextmanager
async def paying(
    tansu: Tansu,
    database_url: str,
    unique: str,
    *,
    finance: dict[str, Any] | None,
    settings: dict[str, Any] = RETRYING,
) -> AsyncIterator[Paying]:
    """``finance``: how the simulator behaves (None: no finance system answers at all)."""
    prefix, app = f"{unique}.", f"{unique}-app"
    simulator = (
        finance_simulator(tansu, prefix, delay_seconds=0.05, failure_rate=0, seed=1, **finance)
        if finance is not None
        else contextlib.nullcontext()
    )
    async with (
        running_service(tansu.bootstrap, database_url, prefix, **settings) as service,
        simulator,
        TopicWatcher(tansu.bootstrap, names(prefix)) as watcher,
        Publisher(tansu.bootstrap, prefix) as publisher,
    ):
        await budget(service, unique, 100_000)
        await reserved(publisher, watcher, reserve(app, usd(50_000), program=unique))
        command = pay(app, 1, usd(35_000), program=unique)
        await publisher.send(PAY_TRANCHE, command)
        yield Paying(service, watcher, publisher, app, command)


def cycle_opened(program: str, budget: Money) -> Envelope[ProgramCycleOpened]:
    """What intake announces when the program's 2027 applications open."""
    return new_envelope(
        ProgramCycleOpened(
            program_code=program, cycle="2027", annual_budget=budget, catalog_version="2027.1"
        ),
        producer="intake",
        application_id=program_cycle_key(program, "2027"),
    )


async def test_reserve_pay_and_settle_on_the_catalog_budget_publishes_each_answer(
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
        # The program's budget is opened from the catalog, as intake announces it.
        await publisher.send(PROGRAM_CYCLE_OPENED, cycle_opened(unique, usd(25_000_000)))

        async def budget_open() -> bool:
            url = f"/v1/budgets/{unique}/2027"
            return (await service.client.get(url, headers=service.officer)).status_code == 200

        await eventually(budget_open, timeout=30)
        await reserved(publisher, watcher, reserve(app, usd(1_000_000), program=unique))
        tranche = pay(app, 1, usd(700_000), program=unique)
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
    async with paying(tansu, postgres_url, unique, finance={"duplicate_rate": 1}) as payment:
        app, service = payment.app, payment.service
        first, second = await payment.wait_for(
            PAYMENT_SETTLED, count=2, instruction_id=payment.instruction_id
        )
        assert first["payload"] == second["payload"]

        assert await dispositions(service, app, count=2) == ["applied", "duplicate"]
        body = json.dumps({"outcome": "settled", **first["payload"]}).encode()
        webhook = await service.client.post(
            "/v1/finance/settlements", content=body, headers=sign(body)
        )
        assert webhook.json()["disposition"] == "duplicate"

        report = (
            await service.client.get(f"/v1/budgets/{unique}/2027", headers=service.officer)
        ).json()
        assert report["disbursed"] == {"amount_minor": 35_000, "currency": "USD"}
        await payment.wait_for(DISBURSEMENT_SETTLED, application_id=app)
        await asyncio.sleep(1)  # a second answer, were there one, would be relayed by now
        assert len(payment.seen(DISBURSEMENT_SETTLED, application_id=app)) == 1


async def test_a_repeated_command_is_answered_again_with_the_same_event(
    tansu: Tansu, database_url: str, unique: str
) -> None:
    prefix, app = f"{unique}.", f"{unique}-app"
    async with (
        running_service(tansu.bootstrap, database_url, prefix) as service,
        TopicWatcher(tansu.bootstrap, names(prefix)) as watcher,
        Publisher(tansu.bootstrap, prefix) as publisher,
    ):
        await budget(service, unique, 100_000)
        command = reserve(app, usd(50_000), program=unique)
        await reserved(publisher, watcher, command)
        # The workflow heard nothing back in time and sends the same command again.
        again = new_envelope(command.payload, producer="workflows", application_id=app)
        await publisher.send(RESERVE_FUNDS, again)
        answers = await watcher.wait_for(
            FUNDS_RESERVED.qualified(prefix), count=2, command_id=command.payload.command_id
        )
        assert len({answer["event_id"] for answer in answers}) == 1
        report = (
            await service.client.get(f"/v1/budgets/{unique}/2027", headers=service.officer)
        ).json()
        assert report["reserved"] == {"amount_minor": 50_000, "currency": "USD"}


async def test_a_payment_that_fails_twice_then_settles_answers_settled_and_never_failed(
    tansu: Tansu, database_url: str, unique: str
) -> None:
    finance = {"duplicate_rate": 0, "fail_first_sends": 2}
    async with paying(tansu, database_url, unique, finance=finance) as payment:
        command = payment.command
        await payment.wait_for(PAYMENT_FAILED, instruction_id=payment.instruction_id)
        # The workflow's own deadline: the same command again, while disbursement retries.
        await payment.publisher.send(
            PAY_TRANCHE,
            new_envelope(command.payload, producer="workflows", application_id=payment.app),
        )
        [answer] = await payment.wait_for(
            DISBURSEMENT_SETTLED, command_id=command.payload.command_id
        )
        assert answer["payload"]["amount"] == {"amount_minor": 35_000, "currency": "USD"}
        assert len(payment.sends()) == 3
        assert len(payment.seen(PAYMENT_FAILED, instruction_id=payment.instruction_id)) == 2
        assert payment.seen(DISBURSEMENT_FAILED) == []


async def test_a_payment_failing_every_attempt_answers_failed_once_and_an_officer_pays_it_once(
    tansu: Tansu, database_url: str, unique: str
) -> None:
    # Three rejections, then finance pays, and delivers each settlement twice.
    finance = {"duplicate_rate": 1, "fail_first_sends": 3}
    async with paying(tansu, database_url, unique, finance=finance) as payment:
        app, service = payment.app, payment.service
        [failed] = await payment.wait_for(
            DISBURSEMENT_FAILED, command_id=payment.command.payload.command_id
        )
        assert failed["payload"]["attempts"] == 3
        assert len(payment.sends()) == 3

        # A program officer asks to pay again: the workflow sends a new command, same key.
        officer = pay(app, 1, usd(35_000), program=unique, command_id=f"{app}:pay:1:again")
        await payment.publisher.send(PAY_TRANCHE, officer)
        await payment.wait_for(DISBURSEMENT_SETTLED, command_id=officer.payload.command_id)
        assert await dispositions(service, app, count=5) == [
            "retrying",
            "retrying",
            "failed",
            "applied",
            "duplicate",
        ]
        assert len(payment.sends()) == 4
        assert len(payment.seen(DISBURSEMENT_SETTLED, application_id=app)) == 1
        assert len(payment.seen(DISBURSEMENT_FAILED, application_id=app)) == 1
        report = (
            await service.client.get(f"/v1/budgets/{unique}/2027", headers=service.officer)
        ).json()
        assert report["disbursed"] == {"amount_minor": 35_000, "currency": "USD"}
        assert report["in_payment"] == {"amount_minor": 0, "currency": "USD"}


async def test_an_instruction_never_answered_is_sent_again_then_escalated(
    tansu: Tansu, postgres_url: str, unique: str
) -> None:
    unanswered = {
        "settlement_deadline_seconds": 0.3,
        "deadline_scan_interval_seconds": 0.1,
        "max_payment_attempts": 2,
    }
    async with paying(tansu, postgres_url, unique, finance=None, settings=unanswered) as payment:
        [failed] = await payment.wait_for(
            DISBURSEMENT_FAILED, command_id=payment.command.payload.command_id
        )
        assert failed["payload"]["attempts"] == 2
        assert "escalated to a program officer" in failed["payload"]["reason"]
        assert len(payment.sends()) == 2

        service = payment.service
        report = (await service.client.get("/v1/reconciliation", headers=service.officer)).json()
        [overdue] = [f for f in report["findings"] if f["instruction_id"] == payment.instruction_id]
        assert (overdue["kind"], overdue["status"]) == ("unsettled_past_deadline", "escalated")


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
        # At least once: a consumer that reads its partitions again dead-letters it again.
        letter, *_again = await watcher.wait_for(dead_letters)
        assert letter["reason"] == f"invalid message: PoisonMessage: no payment instruction {ghost}"
        original = json.loads(base64.b64decode(letter["original_base64"]))
        assert original["payload"]["instruction_id"] == ghost
        report = (await service.client.get("/v1/reconciliation", headers=service.officer)).json()
        [finding] = [f for f in report["findings"] if f["instruction_id"] == ghost]
        assert (finding["kind"], finding["finance_reference"]) == ("unknown_settlement", "FIN-X")


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


REMINDING = {
    **RETRYING,
    "refund_reminder_seconds": 0.3,
    "max_refund_reminders": 1,
}


async def test_a_refund_is_asked_of_finance_collected_and_clears_refund_due(
    tansu: Tansu, database_url: str, unique: str
) -> None:
    finance = {"duplicate_rate": 1}  # finance delivers each receipt twice: counted once
    async with paying(tansu, database_url, unique, finance=finance) as payment:
        app, service = payment.app, payment.service
        await payment.wait_for(DISBURSEMENT_SETTLED, application_id=app)
        command = refund(app, usd(20_000), program=unique)
        await payment.publisher.send(REQUEST_REFUND, command)
        refund_id = command.payload.idempotency_key

        [announced] = await payment.wait_for(REFUND_RECEIVED, refund_id=refund_id)
        assert announced["payload"]["amount"] == {"amount_minor": 20_000, "currency": "USD"}
        assert announced["payload"]["refund_due"] == {"amount_minor": 0, "currency": "USD"}
        assert announced["correlation_id"] == command.correlation_id
        [asked] = payment.seen(FINANCE_REFUND_REQUESTED, refund_id=refund_id)
        assert asked["payload"]["payer_reference"] == "payee-1"
        await payment.wait_for(FINANCE_REFUND_RECEIVED, count=2, refund_id=refund_id)

        async def receipts() -> list[str]:
            history = await service.client.get(
                f"/v1/applications/{app}/payments", headers=service.officer
            )
            return [r["disposition"] for r in history.json()["refunds"][0]["receipts"]]

        for _ in range(200):
            if len(await receipts()) >= 2:
                break
            await asyncio.sleep(0.05)
        assert await receipts() == ["applied", "duplicate"]
        report = (
            await service.client.get(f"/v1/budgets/{unique}/2027", headers=service.officer)
        ).json()
        assert report["refund_due"] == {"amount_minor": 0, "currency": "USD"}
        assert report["disbursed"] == {"amount_minor": 15_000, "currency": "USD"}
        # 1,000.00 budget, 500.00 reserved; 200.00 of the 350.00 paid came back.
        assert report["available"] == {"amount_minor": 70_000, "currency": "USD"}
        assert len(payment.seen(REFUND_RECEIVED, refund_id=refund_id)) == 1


async def test_a_refund_finance_cannot_collect_is_reminded_then_escalated(
    tansu: Tansu, database_url: str, unique: str
) -> None:
    finance = {"refund_failure_rate": 1, "duplicate_rate": 0}
    async with paying(tansu, database_url, unique, finance=finance, settings=REMINDING) as payment:
        await payment.wait_for(DISBURSEMENT_SETTLED, application_id=payment.app)
        command = refund(payment.app, usd(35_000), program=unique)
        await payment.publisher.send(REQUEST_REFUND, command)
        refund_id = command.payload.idempotency_key

        [overdue] = await payment.wait_for(REFUND_OVERDUE, refund_id=refund_id)
        assert overdue["payload"]["outstanding"] == {"amount_minor": 35_000, "currency": "USD"}
        assert overdue["payload"]["reminders"] == 1
        assert "direct debit" in overdue["payload"]["reason"]
        asked = payment.seen(FINANCE_REFUND_REQUESTED, refund_id=refund_id)
        assert [a["payload"]["reminder"] for a in asked] == [0, 1]
        assert len(payment.seen(FINANCE_REFUND_FAILED, refund_id=refund_id)) == 2
        assert payment.seen(REFUND_RECEIVED, refund_id=refund_id) == []


async def test_a_cycle_opening_posts_the_catalog_budget_once(
    tansu: Tansu, database_url: str, unique: str
) -> None:
    prefix = f"{unique}."
    opened = cycle_opened(unique, usd(25_000_000))
    async with (
        running_service(tansu.bootstrap, database_url, prefix) as service,
        Publisher(tansu.bootstrap, prefix) as publisher,
    ):
        # Published again after an intake restart (a new event id): still one opening.
        again = new_envelope(
            opened.payload, producer="intake", application_id=opened.application_id
        )
        await publisher.send(PROGRAM_CYCLE_OPENED, opened)
        await publisher.send(PROGRAM_CYCLE_OPENED, opened)
        await publisher.send(PROGRAM_CYCLE_OPENED, again)
        url = f"/v1/budgets/{unique}/2027"

        async def opened_yet() -> bool:
            response = await service.client.get(url, headers=service.officer)
            return response.status_code == 200

        await eventually(opened_yet, timeout=30)
        await asyncio.sleep(2)  # the repeats come after the first on the application's key
        report = (await service.client.get(url, headers=service.officer)).json()
        assert report["budget"] == {"amount_minor": 25_000_000, "currency": "USD"}
        assert report["available"] == report["budget"]
        assert [(c["kind"], c["reason"]) for c in report["changes"]] == [
            ("opening_balance", "annual budget of catalog 2027.1")
        ]
