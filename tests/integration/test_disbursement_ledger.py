"""The disbursement ledger on SQLite and PostgreSQL: budgets, commands, payments, finance."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.contracts.envelope import Envelope
from shared.contracts.money import Money
from shared.contracts.topics import (
    AWARD_ADJUSTED,
    DISBURSEMENT_FAILED,
    DISBURSEMENT_SETTLED,
    FUNDS_REFUSED,
    FUNDS_RELEASED,
    FUNDS_RESERVED,
    PAYMENT_INSTRUCTED,
    REFUND_REQUESTED,
)
from shared.contracts.workflows import PayTranche
from shared.errors import ConflictError
from shared.messaging.deadletter import PoisonMessage
from tests.support.disbursement import (
    Ledger,
    adjust,
    failed,
    pay,
    refund,
    release,
    reserve,
    settled,
    usd,
)


@pytest.fixture
async def ledger(isolated_database_url: str) -> AsyncIterator[Ledger]:
    ledger = await Ledger.create(
        isolated_database_url,
        settlement_deadline_seconds=60,
        retry_delay_seconds=5,
        max_payment_attempts=3,
    )
    yield ledger
    await ledger.close()


async def paying(ledger: Ledger, program: str) -> tuple[str, Envelope[PayTranche]]:
    """An application of ``program`` with 500.00 USD reserved and tranche 1 of 350.00 sent."""
    app = f"{program}-a"
    await ledger.budget(program, usd(100_000))
    await ledger.run(reserve(app, usd(50_000), program=program))
    command = pay(app, 1, usd(35_000), program=program)
    await ledger.run(command)
    return app, command


async def test_a_reservation_within_the_budget_is_answered_with_its_command_id(
    ledger: Ledger, unique: str
) -> None:
    await ledger.budget(unique, usd(100_000))
    command = reserve(f"{unique}-a", usd(60_000), program=unique)
    await ledger.run(command)
    [answer] = await ledger.published(f"{unique}-a")
    assert answer.topic == FUNDS_RESERVED.name
    assert answer.payload["command_id"] == command.payload.command_id
    assert answer.envelope["causation_id"] == str(command.event_id)
    report = await ledger.report(unique)
    assert (report.available, report.reserved) == (usd(40_000), usd(60_000))


async def test_a_reservation_over_the_available_budget_is_refused_with_what_is_left(
    ledger: Ledger, unique: str
) -> None:
    await ledger.budget(unique, usd(100_000))
    await ledger.run(reserve(f"{unique}-a", usd(70_000), program=unique))
    await ledger.run(reserve(f"{unique}-b", usd(40_000), program=unique))
    [answer] = await ledger.published(f"{unique}-b")
    assert answer.topic == FUNDS_REFUSED.name
    assert answer.payload["available"] == {"amount_minor": 30_000, "currency": "USD"}
    assert "30,000" not in answer.payload["reason"]
    assert "300.00 USD available" in answer.payload["reason"]
    assert (await ledger.report(unique)).reserved == usd(70_000)


async def test_a_reservation_against_an_unknown_budget_is_refused_saying_so(
    ledger: Ledger, unique: str
) -> None:
    await ledger.run(reserve(f"{unique}-a", usd(1_000), program=unique, cycle="2031"))
    [answer] = await ledger.published(f"{unique}-a")
    assert answer.topic == FUNDS_REFUSED.name
    assert answer.payload["reason"] == f"no budget for program {unique} cycle 2031"


async def test_a_repeated_command_gets_the_same_answer_event_again_and_moves_no_money(
    ledger: Ledger, unique: str
) -> None:
    await ledger.budget(unique, usd(100_000))
    command = reserve(f"{unique}-a", usd(60_000), program=unique)
    await ledger.run(command)
    await ledger.relay()
    [first] = await ledger.published(f"{unique}-a")
    assert first.subject == command.payload.command_id
    await ledger.resend(command)  # the workflow sends it again: same command, new event id
    await ledger.run(command)  # Kafka delivers the first send twice: the inbox drops it
    [again] = await ledger.published(f"{unique}-a")
    assert again.event_id == first.event_id
    assert not again.sent  # to be published again, as it was
    assert (await ledger.report(unique)).reserved == usd(60_000)


async def test_a_new_command_with_the_key_of_an_earlier_success_gets_that_success(
    ledger: Ledger, unique: str
) -> None:
    await ledger.budget(unique, usd(100_000))
    command = reserve(f"{unique}-a", usd(60_000), program=unique)
    await ledger.run(command)
    again = reserve(f"{unique}-a", usd(60_000), program=unique, key=command.payload.command_id)
    await ledger.run(again)
    first, by_key = await ledger.published(f"{unique}-a")
    assert by_key.topic == FUNDS_RESERVED.name
    assert by_key.payload == {**first.payload, "command_id": again.payload.command_id}
    assert by_key.subject == again.payload.command_id
    assert (await ledger.report(unique)).reserved == usd(60_000)


async def test_a_refusal_does_not_use_up_the_key_so_a_waitlisted_application_can_ask_again(
    ledger: Ledger, unique: str
) -> None:
    await ledger.budget(unique, usd(50_000))
    first = reserve(f"{unique}-a", usd(60_000), program=unique)
    await ledger.run(first)
    await ledger.budget(unique, usd(80_000))
    await ledger.run(
        reserve(f"{unique}-a", usd(60_000), program=unique, key=first.payload.command_id)
    )
    refused, reserved = await ledger.published(f"{unique}-a")
    assert (refused.topic, reserved.topic) == (FUNDS_REFUSED.name, FUNDS_RESERVED.name)


async def test_two_reservations_racing_for_the_last_of_a_budget_exactly_one_wins(
    ledger: Ledger, unique: str
) -> None:
    await ledger.budget(unique, usd(100_000))
    first, second = f"{unique}-1", f"{unique}-2"
    await asyncio.gather(
        ledger.run(reserve(first, usd(60_000), program=unique)),
        ledger.run(reserve(second, usd(60_000), program=unique)),
    )
    topics = {(await ledger.published(app))[0].topic for app in (first, second)}
    assert topics == {FUNDS_RESERVED.name, FUNDS_REFUSED.name}
    assert (await ledger.report(unique)).available == usd(40_000)


async def test_reservations_racing_for_the_last_of_a_budget_never_overcommit_it(
    ledger: Ledger, unique: str
) -> None:
    await ledger.budget(unique, usd(100_000))
    applications = [f"{unique}-{n}" for n in range(6)]
    await asyncio.gather(
        *(ledger.run(reserve(app, usd(40_000), program=unique)) for app in applications)
    )
    topics = [(await ledger.published(app))[0].topic for app in applications]
    assert topics.count(FUNDS_RESERVED.name) == 2
    assert topics.count(FUNDS_REFUSED.name) == 4
    report = await ledger.report(unique)
    assert (report.reserved, report.available) == (usd(80_000), usd(20_000))


async def test_a_settled_tranche_is_disbursed_once_and_answers_the_pay_command(
    ledger: Ledger, unique: str
) -> None:
    app, command = await paying(ledger, unique)
    [instructed] = await ledger.published(app, PAYMENT_INSTRUCTED)
    assert instructed.payload["instruction_id"] == f"{app}:1"
    assert instructed.payload["amount"] == {"amount_minor": 35_000, "currency": "USD"}
    assert (await ledger.report(unique)).in_payment == usd(35_000)

    assert await ledger.finance(settled(f"{app}:1", usd(35_000), "FIN-9")) == "applied"
    assert await ledger.finance(settled(f"{app}:1", usd(35_000), "FIN-9"), "webhook") == (
        "duplicate"
    )
    assert await ledger.finance(settled(f"{app}:1", usd(35_000), "FIN-10")) == "duplicate"
    [answer] = await ledger.published(app, DISBURSEMENT_SETTLED)
    assert answer.payload["command_id"] == command.payload.command_id
    assert answer.subject == command.payload.command_id
    assert answer.payload["finance_reference"] == "FIN-9"
    report = await ledger.report(unique)
    assert (report.disbursed, report.in_payment, report.reserved) == (
        usd(35_000),
        usd(0),
        usd(15_000),
    )
    # The pay command sent again after settlement gets the settlement, and pays nothing.
    await ledger.relay()
    await ledger.resend(command)
    assert len(await ledger.published(app, PAYMENT_INSTRUCTED)) == 1
    [again] = await ledger.published(app, DISBURSEMENT_SETTLED)
    assert (again.event_id, again.sent) == (answer.event_id, False)
    assert (await ledger.report(unique)).disbursed == usd(35_000)


async def test_a_tranche_over_the_reservation_fails_without_an_instruction(
    ledger: Ledger, unique: str
) -> None:
    app = f"{unique}-a"
    await ledger.budget(unique, usd(100_000))
    await ledger.run(reserve(app, usd(50_000), program=unique))
    await ledger.run(pay(app, 1, usd(50_001), program=unique))
    [answer] = await ledger.published(app, DISBURSEMENT_FAILED)
    assert answer.payload["attempts"] == 0
    assert "exceeds the 500.00 USD still reserved" in answer.payload["reason"]
    assert await ledger.published(app, PAYMENT_INSTRUCTED) == []


async def test_a_payment_that_fails_twice_then_settles_answers_settled_and_never_failed(
    ledger: Ledger, unique: str
) -> None:
    app, command = await paying(ledger, unique)
    for _ in range(2):
        assert await ledger.finance(failed(f"{app}:1")) == "retrying"
        assert await ledger.tick() == 0  # not before the retry delay
        ledger.clock.advance(seconds=5)
        assert await ledger.tick() == 1
    # The workflow sends its command again meanwhile: disbursement retries, it says nothing.
    await ledger.resend(command)
    sends = await ledger.published(app, PAYMENT_INSTRUCTED)
    assert len(sends) == 3
    assert all(send.payload == sends[0].payload for send in sends)
    assert len({send.event_id for send in sends}) == 3
    assert await ledger.finance(settled(f"{app}:1", usd(35_000))) == "applied"
    [answer] = await ledger.published(app, DISBURSEMENT_SETTLED)
    assert (answer.payload["tranche"], answer.subject) == (1, command.payload.command_id)
    assert await ledger.published(app, DISBURSEMENT_FAILED) == []
    [payment] = (await ledger.history(app)).payments
    assert (payment.status, payment.attempts, payment.sends) == ("settled", 3, 3)
    assert [r.disposition for r in payment.receipts] == ["retrying", "retrying", "applied"]


async def test_a_payment_failed_max_attempts_times_answers_failed_once_and_is_reserved_again(
    ledger: Ledger, unique: str
) -> None:
    app, command = await paying(ledger, unique)
    for _ in range(2):
        await ledger.finance(failed(f"{app}:1"))
        ledger.clock.advance(seconds=5)
        await ledger.tick()
    assert await ledger.finance(failed(f"{app}:1", "account closed")) == "failed"
    ledger.clock.advance(seconds=3600)
    assert await ledger.tick() == 0  # out of attempts: no more sends
    assert len(await ledger.published(app, PAYMENT_INSTRUCTED)) == 3
    [answer] = await ledger.published(app, DISBURSEMENT_FAILED)
    assert answer.payload["attempts"] == 3
    assert answer.payload["reason"] == "finance refused the payment: account closed"
    assert answer.subject == command.payload.command_id
    report = await ledger.report(unique)
    assert (report.reserved, report.in_payment) == (usd(50_000), usd(0))
    await ledger.relay()
    await ledger.resend(command)  # the same command again: the same answer again
    [again] = await ledger.published(app, DISBURSEMENT_FAILED)
    assert (again.event_id, again.sent) == (answer.event_id, False)


async def test_an_officers_new_pay_command_after_a_failure_pays_the_same_instruction_once(
    ledger: Ledger, unique: str
) -> None:
    app, _command = await paying(ledger, unique)
    for _ in range(3):
        await ledger.finance(failed(f"{app}:1"))
        ledger.clock.advance(seconds=5)
        await ledger.tick()
    # A program officer asks to pay again: a new command with the same idempotency key.
    officer = pay(app, 1, usd(35_000), program=unique, command_id=f"{app}:pay:1:officer")
    await ledger.run(officer)
    sends = await ledger.published(app, PAYMENT_INSTRUCTED)
    assert len(sends) == 4
    assert sends[-1].payload["instruction_id"] == f"{app}:1"
    assert (await ledger.report(unique)).in_payment == usd(35_000)
    assert await ledger.finance(failed(f"{app}:1")) == "retrying"  # a fresh round
    assert await ledger.finance(settled(f"{app}:1", usd(35_000), "FIN-1")) == "applied"
    assert await ledger.finance(settled(f"{app}:1", usd(35_000), "FIN-2")) == "duplicate"
    [answer] = await ledger.published(app, DISBURSEMENT_SETTLED)
    assert answer.payload["command_id"] == officer.payload.command_id
    assert len(await ledger.published(app, DISBURSEMENT_FAILED)) == 1
    report = await ledger.report(unique)
    assert (report.disbursed, report.in_payment, report.reserved) == (
        usd(35_000),
        usd(0),
        usd(15_000),
    )


async def test_an_unanswered_instruction_is_resent_then_escalated_after_the_limit(
    ledger: Ledger, unique: str
) -> None:
    app, command = await paying(ledger, unique)
    for _ in range(3):
        ledger.clock.advance(seconds=61)
        await ledger.tick()
    assert len(await ledger.published(app, PAYMENT_INSTRUCTED)) == 3
    [answer] = await ledger.published(app, DISBURSEMENT_FAILED)
    assert answer.payload["attempts"] == 3
    assert answer.payload["command_id"] == command.payload.command_id
    assert "escalated" in answer.payload["reason"]
    report = await ledger.reconciliation()
    [finding] = [f for f in report.findings if f.instruction_id == f"{app}:1"]
    assert (finding.kind, finding.status) == ("unsettled_past_deadline", "escalated")
    # Finance did pay after all: the late settlement counts, and is answered.
    assert await ledger.finance(settled(f"{app}:1", usd(35_000))) == "applied"
    assert (await ledger.report(unique)).disbursed == usd(35_000)
    assert len(await ledger.published(app, DISBURSEMENT_SETTLED)) == 1


async def test_release_returns_what_is_still_reserved_and_a_release_of_nothing_is_answered(
    ledger: Ledger, unique: str
) -> None:
    app = f"{unique}-a"
    await ledger.budget(unique, usd(100_000))
    await ledger.run(release(f"{unique}-never", program=unique))
    [nothing] = await ledger.published(f"{unique}-never")
    assert nothing.payload["amount"]["amount_minor"] == 0
    await ledger.run(reserve(app, usd(50_000), program=unique))
    await ledger.run(pay(app, 1, usd(35_000), program=unique))
    await ledger.finance(settled(f"{app}:1", usd(35_000)))
    await ledger.run(release(app, program=unique))
    [released] = await ledger.published(app, FUNDS_RELEASED)
    assert released.payload["amount"] == {"amount_minor": 15_000, "currency": "USD"}
    report = await ledger.report(unique)
    assert (report.available, report.reserved, report.disbursed) == (
        usd(65_000),
        usd(0),
        usd(35_000),
    )


async def test_a_refund_asks_back_at_most_what_was_paid(ledger: Ledger, unique: str) -> None:
    app, _command = await paying(ledger, unique)
    await ledger.finance(settled(f"{app}:1", usd(35_000)))
    await ledger.run(refund(app, usd(50_000), program=unique))
    [answer] = await ledger.published(app, REFUND_REQUESTED)
    assert answer.payload["amount"] == {"amount_minor": 35_000, "currency": "USD"}
    assert "350.00 USD was paid" in answer.payload["reason"]
    report = await ledger.report(unique)
    assert (report.disbursed, report.refund_due) == (usd(0), usd(35_000))


async def test_an_adjusted_award_moves_the_reservation_but_never_below_what_was_paid(
    ledger: Ledger, unique: str
) -> None:
    app, _command = await paying(ledger, unique)
    await ledger.run(adjust(app, usd(60_000), program=unique))
    [adjusted] = await ledger.published(app, AWARD_ADJUSTED)
    assert adjusted.payload["reserved"] == {"amount_minor": 25_000, "currency": "USD"}
    await ledger.run(adjust(app, usd(30_000), program=unique))
    [refused] = await ledger.published(app, FUNDS_REFUSED)
    assert "request a refund of the difference first" in refused.payload["reason"]
    await ledger.run(adjust(app, usd(200_000), program=unique))
    assert len(await ledger.published(app, FUNDS_REFUSED)) == 2
    report = await ledger.report(unique)
    assert (report.available, report.reserved, report.in_payment) == (
        usd(40_000),
        usd(25_000),
        usd(35_000),
    )


async def test_a_payee_is_paid_in_its_currency_at_the_recorded_rate(
    ledger: Ledger, unique: str
) -> None:
    app = f"{unique}-a"
    await ledger.budget(unique, usd(100_000))
    async with ledger.service.work() as work:
        await ledger.service.set_payee(work, f"{unique}-payee", "KES")
    await ledger.run(reserve(app, usd(50_000), program=unique))
    await ledger.run(pay(app, 1, usd(10_000), program=unique, payee=f"{unique}-payee"))
    [refused] = await ledger.published(app, DISBURSEMENT_FAILED)
    assert "no exchange rate from USD to KES" in refused.payload["reason"]

    async with ledger.service.work() as work:
        await ledger.service.set_rate(work, "USD", "KES", "129.5", "officer")
    await ledger.run(
        pay(app, 1, usd(10_000), program=unique, payee=f"{unique}-payee", command_id="again")
    )
    [instructed] = await ledger.published(app, PAYMENT_INSTRUCTED)
    assert instructed.payload["amount"] == {"amount_minor": 1_295_000, "currency": "KES"}
    assert instructed.payload["award_amount"] == {"amount_minor": 10_000, "currency": "USD"}
    assert instructed.payload["fx_rate"] == "129.5"
    # Finance paid 10,000 KES less than instructed: held for an officer, not applied.
    short = Money(amount_minor=1_294_000, currency="KES")
    assert await ledger.finance(settled(f"{app}:1", short)) == "mismatch"
    assert (await ledger.report(unique)).disbursed == usd(0)
    await ledger.finance(settled(f"{app}:1", Money(amount_minor=1_295_000, currency="KES")))
    report = await ledger.report(unique)
    assert report.disbursed == usd(10_000)  # the ledger books the program currency
    assert (report.fx.payments, report.fx.fx_difference) == (1, usd(0))
    [payment] = (await ledger.history(app)).payments
    assert payment.fx_difference == usd(0)


async def test_reconciliation_lists_overdue_duplicate_unknown_and_mismatched_settlements(
    ledger: Ledger, unique: str
) -> None:
    await ledger.budget(unique, usd(100_000))
    for app in ("late", "dup", "short"):
        await ledger.run(reserve(f"{unique}-{app}", usd(10_000), program=unique))
        await ledger.run(pay(f"{unique}-{app}", 1, usd(10_000), program=unique))
    await ledger.finance(settled(f"{unique}-dup:1", usd(10_000), "FIN-1"))
    await ledger.finance(settled(f"{unique}-dup:1", usd(10_000), "FIN-2"))
    await ledger.finance(settled(f"{unique}-short:1", usd(9_000), "FIN-3"))
    ghost = settled(f"{unique}-ghost:1", usd(5_000), "FIN-4")
    assert await ledger.finance(ghost) == "dead-lettered"  # on Kafka: refused by the consumer
    assert await ledger.finance(ghost, "webhook") == "unknown"  # recorded, answered 404
    ledger.clock.advance(seconds=61)
    report = await ledger.reconciliation()
    mine = {f.kind: f for f in report.findings if f.instruction_id.startswith(unique)}
    assert set(mine) == {
        "unsettled_past_deadline",
        "duplicate",
        "unknown_settlement",
        "amount_mismatch",
    }
    # The short settlement was held, not applied: its instruction waits like the late one.
    unsettled = {f.instruction_id for f in report.findings if f.kind == "unsettled_past_deadline"}
    assert {f"{unique}-late:1", f"{unique}-short:1"} <= unsettled
    assert "another reference" in mine["duplicate"].detail
    assert mine["amount_mismatch"].settled == usd(9_000)
    rows = list(csv.DictReader(io.StringIO(report.csv())))
    [short] = [
        row
        for row in rows
        if row["instruction_id"] == f"{unique}-short:1" and row["kind"] == "amount_mismatch"
    ]
    assert (short["instructed_amount"], short["settled_amount"]) == ("100.00", "90.00")


async def test_a_budget_cannot_go_below_what_is_committed(ledger: Ledger, unique: str) -> None:
    await ledger.budget(unique, usd(100_000))
    await ledger.run(reserve(f"{unique}-a", usd(60_000), program=unique))
    with pytest.raises(ConflictError, match=r"600\.00 USD already committed"):
        await ledger.budget(unique, usd(50_000))
    await ledger.budget(unique, usd(60_000))
    report = await ledger.report(unique)
    assert (report.budget, report.available) == (usd(60_000), usd(0))


async def test_a_release_in_another_currency_than_the_award_cannot_be_carried_out(
    ledger: Ledger, unique: str
) -> None:
    app = f"{unique}-a"
    await ledger.budget(unique, usd(100_000))
    await ledger.run(reserve(app, usd(50_000), program=unique))
    euros = Money(amount_minor=1_000, currency="EUR")
    with pytest.raises(PoisonMessage, match="release in EUR of an award in USD"):
        await ledger.run(release(app, euros, program=unique))
    assert (await ledger.report(unique)).reserved == usd(50_000)


async def test_the_waitlist_is_served_in_submission_order(ledger: Ledger, unique: str) -> None:
    day = datetime(2027, 1, 10, tzinfo=UTC)

    def asks(app: str, amount_minor: int, submitted_day: int) -> Envelope[Any]:
        return reserve(
            f"{unique}-{app}",
            usd(amount_minor),
            program=unique,
            submitted_at=day + timedelta(days=submitted_day),
        )

    async def answer_of(app: str) -> str:
        *_, last = await ledger.published(f"{unique}-{app}")
        return last.topic

    await ledger.budget(unique, usd(100_000))
    await ledger.run(asks("a", 80_000, 1))
    # b (submitted on day 2) cannot be covered and waits; c (day 3) would fit in what is
    # left, but b came first.
    await ledger.run(asks("b", 50_000, 2))
    await ledger.run(asks("c", 15_000, 3))
    assert [await answer_of(app) for app in "abc"] == [
        FUNDS_RESERVED.name,
        FUNDS_REFUSED.name,
        FUNDS_REFUSED.name,
    ]
    *_, refused = await ledger.published(f"{unique}-c")
    assert (
        "1 application(s) submitted earlier wait for 500.00 USD first" in refused.payload["reason"]
    )
    # a is released: 100,000 available. c asks again first and fits after b's 50,000; b then
    # fits too.
    await ledger.run(release(f"{unique}-a", program=unique))
    await ledger.run(asks("c", 15_000, 3))
    await ledger.run(asks("b", 50_000, 2))
    assert [await answer_of(app) for app in "bc"] == [FUNDS_RESERVED.name, FUNDS_RESERVED.name]
    assert (await ledger.report(unique)).reserved == usd(65_000)


async def test_an_application_withdrawn_from_the_waitlist_holds_up_no_one(
    ledger: Ledger, unique: str
) -> None:
    await ledger.budget(unique, usd(40_000))
    first = datetime(2027, 1, 10, tzinfo=UTC)
    await ledger.run(reserve(f"{unique}-a", usd(60_000), program=unique, submitted_at=first))
    await ledger.run(release(f"{unique}-a", program=unique))  # withdrawn while waiting
    later = first + timedelta(days=1)
    await ledger.run(reserve(f"{unique}-b", usd(30_000), program=unique, submitted_at=later))
    *_, answer = await ledger.published(f"{unique}-b")
    assert answer.topic == FUNDS_RESERVED.name
