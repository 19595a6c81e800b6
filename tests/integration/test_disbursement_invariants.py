"""Ledger invariants under random command sequences, with duplicates and reordering.

Commands, finance answers and the deadline clock arrive in any order, and any earlier
command may be delivered again (by Kafka, or sent again by the workflow). After every
step: each transaction sums to zero, no balance is negative, what is paid never exceeds
the award, what awards hold never exceeds the budget, no instruction is settled twice, a
repeated command changes nothing, and no command gets two answers on one topic. Refunds:
what an application owes (``refund_due``) is what its refunds still have outstanding, no
refund receives more than it asked, and a receipt counts once per finance reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from services.disbursement.domain import Account
from services.disbursement.persistence import messaging, metadata
from services.disbursement.persistence.tables import (
    awards,
    entries,
    refund_receipts,
    refunds,
    transactions,
)
from shared.contracts.envelope import Envelope
from shared.db import create_engine
from shared.errors import ConflictError
from tests.support.disbursement import (
    Ledger,
    adjust,
    failed,
    not_collected,
    pay,
    received,
    refund,
    release,
    reserve,
    settled,
    usd,
)

BUDGET = usd(100_000)
amounts = st.integers(min_value=1, max_value=45_000)
applications = st.integers(0, 2)


class LedgerMachine(RuleBasedStateMachine):
    """One program of its own in a database shared by all examples (creating one is slow)."""

    loop: asyncio.AbstractEventLoop
    ledger: Ledger
    examples = 0

    def __init__(self) -> None:
        super().__init__()
        LedgerMachine.examples += 1
        self.program = f"P{LedgerMachine.examples}"
        self.applications = tuple(f"{self.program}-{n}" for n in range(3))
        self.commands: list[Envelope[Any]] = []
        self.instructed: dict[str, int] = {}
        self.refund_notices: list[Any] = []
        self.run(self.ledger.budget(self.program, BUDGET))

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self._audit())

    def send(self, command: Envelope[Any]) -> None:
        self.commands.append(command)
        self.run(self.ledger.run(command))

    # Commands from the workflow -----------------------------------------------------------

    @rule(n=applications, amount=amounts)
    def reserve_funds(self, n: int, amount: int) -> None:
        app = self.applications[n]
        self.send(reserve(app, usd(amount), program=self.program))

    @rule(n=applications, share=st.sampled_from([0.25, 0.5, None]))
    def release_funds(self, n: int, share: float | None) -> None:
        app = self.applications[n]
        reserved = self.run(self.balances()).get((Account.RESERVED.value, app), 0)
        amount = None if share is None else usd(int(reserved * share))
        self.send(release(app, amount, program=self.program))

    @initialize(reserved=st.lists(amounts, min_size=3, max_size=3))
    def awards_are_reserved(self, reserved: list[int]) -> None:
        for app, amount in zip(self.applications, reserved, strict=True):
            self.send(reserve(app, usd(amount), program=self.program))
        # The first award starts with its advance paid and part of it asked back, so that
        # every example has a refund for finance to answer about.
        self.an_advance_is_paid_and_partly_refunded(0, 0.3)

    @rule(
        n=applications,
        tranche=st.integers(1, 2),
        share=st.sampled_from([0.3, 0.7, 1.0, 1.5]),
    )
    def pay_tranche(self, n: int, tranche: int, share: float) -> None:
        app = self.applications[n]
        reserved = self.run(self.balances()).get((Account.RESERVED.value, app), 0)
        amount = max(1, int(reserved * share))
        command_id = f"{app}:pay:{tranche}:{len(self.commands)}"
        self.send(pay(app, tranche, usd(amount), program=self.program, command_id=command_id))
        if f"{app}:{tranche}" not in self.instructed:
            history = self.run(self.ledger.history(app))
            for payment in history.payments if history else []:
                self.instructed[payment.instruction_id] = payment.award_amount.amount_minor

    @rule(n=applications, amount=amounts)
    def request_refund(self, n: int, amount: int) -> None:
        app = self.applications[n]
        self.send(refund(app, usd(amount), program=self.program))

    @rule(n=applications, amount=st.integers(0, 80_000))
    def adjust_award(self, n: int, amount: int) -> None:
        app = self.applications[n]
        self.send(adjust(app, usd(amount), program=self.program))

    @precondition(lambda self: bool(self.commands))
    @rule(data=st.data(), by_the_workflow=st.booleans())
    def a_command_is_delivered_again(self, data: st.DataObject, by_the_workflow: bool) -> None:
        command = data.draw(st.sampled_from(self.commands))
        before = self.run(self.balances())
        self.run(self.ledger.resend(command) if by_the_workflow else self.ledger.run(command))
        assert self.run(self.balances()) == before, "a repeated command changed the ledger"

    def draw_instruction(self, data: st.DataObject) -> str:
        """Mostly an instruction that was sent; now and then one finance made up."""
        if not self.instructed or data.draw(st.integers(0, 9)) == 0:
            return f"{self.program}-ghost:1"
        return data.draw(st.sampled_from(sorted(self.instructed)))

    # Finance and the clock ----------------------------------------------------------------

    @rule(n=applications, tranche=st.integers(1, 2), share=st.sampled_from([0.5, 1.0]))
    def a_tranche_is_paid_and_settled_at_once(self, n: int, tranche: int, share: float) -> None:
        app = self.applications[n]
        self.pay_tranche(n, tranche, share)
        if f"{app}:{tranche}" in self.instructed:
            amount = self.instructed[f"{app}:{tranche}"]
            notice = settled(f"{app}:{tranche}", usd(amount), "FIN-0")
            event(f"settlement {self.run(self.ledger.finance(notice))}")

    @rule(
        data=st.data(),
        reference=st.sampled_from(["FIN-1", "FIN-2"]),
        exact=st.booleans(),
    )
    def finance_settles(self, data: st.DataObject, reference: str, exact: bool) -> None:
        instruction = self.draw_instruction(data)
        amount = self.instructed.get(instruction, 1) + (0 if exact else 1)
        outcome = self.run(self.ledger.finance(settled(instruction, usd(amount), reference)))
        event(f"settlement {outcome}")

    @rule(data=st.data())
    def finance_fails(self, data: st.DataObject) -> None:
        instruction = self.draw_instruction(data)
        event(f"failure {self.run(self.ledger.finance(failed(instruction)))}")

    @rule(seconds=st.sampled_from([1, 5, 61, 121]))
    def time_passes(self, seconds: int) -> None:
        self.ledger.clock.advance(seconds=seconds)
        if self.run(self.ledger.tick()):
            event("overdue instructions re-sent or escalated")
        if self.run(self.ledger.remind()):
            event("refunds reminded or escalated")

    async def asked_refunds(self) -> dict[str, int]:
        async with self.ledger.sessions() as session:
            rows = await session.execute(
                select(refunds.c.refund_id, refunds.c.amount_minor).where(
                    refunds.c.program_code == self.program
                )
            )
            return {refund_id: int(minor) for refund_id, minor in rows.all()}

    def draw_refund(self, data: st.DataObject) -> tuple[str, int]:
        """Mostly a refund that was asked of finance; now and then one finance made up."""
        asked = self.run(self.asked_refunds())
        if not asked or data.draw(st.integers(0, 9)) == 0:
            return f"{self.program}-ghost:refund:x", 1
        refund_id = data.draw(st.sampled_from(sorted(asked)))
        return refund_id, asked[refund_id]

    @precondition(lambda self: bool(self.run(self.asked_refunds())))
    @rule(
        data=st.data(),
        share=st.sampled_from([0.4, 0.6, 1.0, 1.3]),
        reference=st.sampled_from(["FIN-R1", "FIN-R2", "FIN-R3"]),
        channel=st.sampled_from(["kafka", "webhook"]),
    )
    def finance_receives_a_refund(
        self, data: st.DataObject, share: float, reference: str, channel: str
    ) -> None:
        refund_id, asked = self.draw_refund(data)
        amount = max(1, int(asked * share))
        notice = received(refund_id, usd(amount), reference)
        self.refund_notices.append(notice)
        event(f"refund receipt {self.run(self.ledger.refund_answer(notice, channel))}")

    @precondition(lambda self: bool(self.run(self.asked_refunds())))
    @rule(data=st.data())
    def finance_cannot_collect_a_refund(self, data: st.DataObject) -> None:
        refund_id, _asked = self.draw_refund(data)
        notice = not_collected(refund_id)
        self.refund_notices.append(notice)
        event(f"refund failure {self.run(self.ledger.refund_answer(notice))}")

    @precondition(lambda self: bool(self.refund_notices))
    @rule(data=st.data(), channel=st.sampled_from(["kafka", "webhook"]))
    def finance_answers_about_a_refund_again(self, data: st.DataObject, channel: str) -> None:
        notice = data.draw(st.sampled_from(self.refund_notices))
        before = self.run(self.balances())
        self.run(self.ledger.refund_answer(notice, channel))
        assert self.run(self.balances()) == before, "a repeated refund answer moved money"

    @rule(n=applications, share=st.sampled_from([0.3, 1.0]))
    def an_advance_is_paid_and_partly_refunded(self, n: int, share: float) -> None:
        app = self.applications[n]
        self.a_tranche_is_paid_and_settled_at_once(n, 1, 1.0)
        paid = self.run(self.balances()).get((Account.DISBURSED.value, app), 0)
        if paid > 0:
            self.send(refund(app, usd(max(1, int(paid * share))), program=self.program))

    @rule(amount=st.integers(0, 150_000))
    def an_officer_changes_the_budget(self, amount: int) -> None:
        with contextlib.suppress(ConflictError):
            self.run(self.ledger.budget(self.program, usd(amount)))

    # Invariants ---------------------------------------------------------------------------

    async def balances(self) -> dict[tuple[str, str | None], int]:
        async with self.ledger.sessions() as session:
            rows = (
                await session.execute(
                    select(
                        entries.c.account,
                        entries.c.application_id,
                        func.sum(entries.c.amount_minor),
                    )
                    .where(entries.c.program_code == self.program)
                    .group_by(entries.c.account, entries.c.application_id)
                )
            ).all()
        return {(row[0], row[1]): int(row[2]) for row in rows}

    async def _audit(self) -> None:
        """Every transaction balances and no instruction is settled twice (whole history)."""
        async with self.ledger.sessions() as session:
            sums = (
                await session.execute(
                    select(func.sum(entries.c.amount_minor))
                    .where(entries.c.program_code == self.program)
                    .group_by(entries.c.transaction_id)
                )
            ).scalars()
            assert all(total == 0 for total in sums), "a transaction does not balance"
            settlements = (
                await session.execute(
                    select(transactions.c.reference, func.count())
                    .where(
                        transactions.c.kind == "settle", transactions.c.program_code == self.program
                    )
                    .group_by(transactions.c.reference)
                )
            ).all()
            outbox = messaging.outbox
            answers = (
                await session.execute(
                    select(outbox.c.subject, outbox.c.topic, func.count())
                    .where(
                        outbox.c.subject.is_not(None),
                        outbox.c.message_key.startswith(f"{self.program}-"),
                    )
                    .group_by(outbox.c.subject, outbox.c.topic)
                )
            ).all()
            receipts_applied = (
                await session.execute(
                    select(
                        refund_receipts.c.refund_id,
                        refund_receipts.c.finance_reference,
                        func.count(),
                    )
                    .where(
                        refund_receipts.c.refund_id.startswith(f"{self.program}-"),
                        refund_receipts.c.disposition == "applied",
                        refund_receipts.c.outcome == "received",
                    )
                    .group_by(refund_receipts.c.refund_id, refund_receipts.c.finance_reference)
                )
            ).all()
        assert all(count == 1 for _reference, count in settlements), "paid twice"
        assert all(count == 1 for *_subject, count in answers), "a command answered twice"
        assert all(count == 1 for *_key, count in receipts_applied), "a refund counted twice"

    async def _check(self) -> None:
        balances = await self.balances()
        async with self.ledger.sessions() as session:
            rows = await session.execute(
                select(awards.c.application_id, awards.c.awarded_minor).where(
                    awards.c.program_code == self.program
                )
            )
            awarded = {app: int(minor) for app, minor in rows.all()}
            asked = (
                await session.execute(
                    select(
                        refunds.c.refund_id,
                        refunds.c.application_id,
                        refunds.c.amount_minor,
                        refunds.c.received_minor,
                    ).where(refunds.c.program_code == self.program)
                )
            ).all()
            received_back = (
                await session.execute(
                    select(transactions.c.reference, func.sum(entries.c.amount_minor))
                    .join(entries, entries.c.transaction_id == transactions.c.id)
                    .where(
                        transactions.c.program_code == self.program,
                        transactions.c.kind == "refund_received",
                        entries.c.account == Account.AVAILABLE.value,
                    )
                    .group_by(transactions.c.reference)
                )
            ).all()
        outstanding: dict[str, int] = {}
        received_by_refund = {reference: int(total) for reference, total in received_back}
        for refund_id, app, amount, got in asked:
            assert 0 <= got <= amount, "a refund received more than it asked"
            assert received_by_refund.pop(refund_id, 0) == got, "the ledger and the refund differ"
            outstanding[app] = outstanding.get(app, 0) + int(amount) - int(got)
        assert not received_by_refund, "money received for a refund never asked"
        assert sum(balances.values()) == 0, "the ledger does not balance"
        assert all(
            value >= 0 for (account, _app), value in balances.items() if account != "funding"
        )
        budget = -balances.get((Account.FUNDING.value, None), 0)
        held = 0
        for app in self.applications:

            def of(account: Account, app: str = app) -> int:
                return balances.get((account.value, app), 0)

            paid = of(Account.IN_PAYMENT) + of(Account.DISBURSED)
            committed = paid + of(Account.RESERVED)
            assert paid <= committed <= awarded.get(app, 0), f"{app} holds more than its award"
            held += committed
            assert of(Account.REFUND_DUE) == outstanding.get(app, 0), (
                f"{app} owes what it was not asked"
            )
        assert held <= budget, "awards hold more than the budget"

    @invariant()
    def the_ledger_holds_together(self) -> None:
        self.run(self._check())


def test_the_ledger_holds_together_under_random_commands(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    loop = asyncio.new_event_loop()
    try:
        LedgerMachine.loop = loop
        LedgerMachine.ledger = loop.run_until_complete(_ledger(url))
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                # GRANTFLOW_LEDGER_EXAMPLES=500 for a deeper run than the suite's quick one.
                max_examples=int(os.environ.get("GRANTFLOW_LEDGER_EXAMPLES", "20")),
                stateful_step_count=25,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        loop.run_until_complete(LedgerMachine.ledger.close())
        loop.close()


async def _ledger(url: str) -> Ledger:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    await engine.dispose()
    return await Ledger.create(
        url,
        migrate=False,
        settlement_deadline_seconds=60,
        retry_delay_seconds=5,
        max_payment_attempts=2,
        refund_reminder_seconds=120,
        max_refund_reminders=1,
    )
