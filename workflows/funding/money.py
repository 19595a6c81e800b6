"""Money tracking: the reservation, payments, refunds, releases, award changes, close-out.

Every command here moves money, so each carries an idempotency key the ledger refuses to
apply twice, and each outcome is booked once (``Command.accounted``). Disbursement alone
retries finance: a payment it reports failed has failed for good, and the lifecycle asks
a program officer, whose re-send instructs the payment anew (a new command, the same
idempotency key). A command with no answer at all is sent again as it was.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

from temporalio import workflow

from workflows.funding.channel import CommandChannel
from workflows.funding.state import Command

with workflow.unsafe.imports_passed_through():
    from shared.contracts import topics
    from shared.contracts.disbursement import (
        AwardAdjusted,
        DisbursementFailed,
        DisbursementSettled,
        FundsRefused,
        FundsReleased,
        FundsReserved,
        RefundRequested,
    )
    from shared.contracts.money import Money
    from shared.contracts.programs import rescheduled_tranches
    from shared.contracts.topics import Topic
    from shared.contracts.workflows import (
        AdjustAward,
        LedgerCommand,
        PayTranche,
        ReleaseFunds,
        RequestRefund,
        ReserveFunds,
    )
    from workflows.funding import domain, patches
    from workflows.funding.models import Stage


class MoneyTracking(CommandChannel):
    def _ledger(self, step: str, *parts: str, key: str) -> dict[str, Any]:
        """What every money command carries: its id, its idempotency key, whose money it is."""
        application_id = self._app.application_id
        return {
            "command_id": self._command_id(step, *parts),
            "idempotency_key": f"{application_id}:{key}",
            "application_id": application_id,
            "program_code": self._rules.code,
            "cycle": self._rules.cycle,
        }

    async def _transact(
        self,
        topic: Topic,
        step: str,
        command: LedgerCommand,
        *,
        resend_after: timedelta | None = None,
        interruptible: bool = True,
    ) -> Command:
        """Send a money command and wait for its answer (a withdrawal may interrupt)."""
        sent = self._send(topic, step, command, resend_after=resend_after, machine_answered=True)
        await self._wait(functools.partial(self._answered, sent), interruptible=interruptible)
        return sent

    # -- 5. the reservation ---------------------------------------------------------------

    async def _reserve_funds(self) -> bool:
        award = self._award
        assert award is not None
        rules = self._rules
        self._enter(Stage.FUNDS_RESERVATION, f"reserving {award} against the budget")
        cycle_end = domain.end_of_day(rules.exchange_period_end)
        attempt = 0
        while True:
            attempt += 1
            self._reservation_requested = True
            command = await self._transact(
                topics.RESERVE_FUNDS,
                "reserve",
                ReserveFunds(
                    **self._ledger("reserve", str(attempt), key="reservation"),
                    amount=award,
                    submitted_at=self._input.submission.occurred_at,
                ),
            )
            answer = self._answer_to(command)
            if isinstance(answer, FundsReserved):
                self._reserved = answer.amount
                return True
            available = answer.available if isinstance(answer, FundsRefused) else self._zero
            freed_before = self._budget_freed
            if self._stage is not Stage.WAITLISTED:
                self._enter(
                    Stage.WAITLISTED,
                    f"the program budget cannot cover {award} ({available} available); "
                    "waitlisted until funds are released or the cycle ends",
                    deadlines={"cycle_ends": cycle_end},
                )
            retry_at = workflow.now() + domain.resend_interval(rules.command_resend_after, attempt)
            freed = await self._wait(
                functools.partial(self._budget_freed_since, freed_before),
                until=min(cycle_end, retry_at),
            )
            if not freed and workflow.now() >= cycle_end:
                self._enter(
                    Stage.WAITLIST_EXPIRED, "the funding cycle ended before funds were available"
                )
                return False

    def _budget_freed_since(self, count: int) -> bool:
        return self._budget_freed > count

    # -- 6 and 10. payments ---------------------------------------------------------------

    async def _pay(self, tranche: int, amount: Money, stage: Stage) -> None:
        if amount.amount_minor <= 0:
            self._paid_tranches[tranche] = amount
            return
        rules = self._rules
        due = workflow.now() + rules.payment_settlement_period
        self._enter(
            stage, f"tranche {tranche} of {amount} instructed", deadlines={"settlement_due": due}
        )
        instruction = 0
        failures = 0
        while True:
            instruction += 1
            command = await self._transact(
                topics.PAY_TRANCHE,
                "pay",
                PayTranche(
                    **self._ledger("pay", str(tranche), str(instruction), key=str(tranche)),
                    tranche=tranche,
                    amount=amount,
                    payee_reference=self._app.member_id,
                    memo=f"{rules.code} {rules.cycle} {self._app.title} - tranche {tranche}",
                ),
                resend_after=rules.payment_settlement_period,
            )
            failure = self._account_payment(command)
            if failure is None:
                return
            failures += 1
            if failures < rules.payment_max_attempts and not workflow.patched(
                patches.PAYMENT_FAILURE_IS_FINAL
            ):
                # Before disbursement retried finance itself, the lifecycle did.
                due = workflow.now() + rules.payment_settlement_period
                self._enter(
                    stage,
                    f"payment of tranche {tranche} failed ({failure}); instructing it again",
                    deadlines={"settlement_due": due},
                )
                continue
            await self._escalate_payment(tranche, failures, failure)
            failures = 0
            due = workflow.now() + rules.payment_settlement_period
            self._enter(
                stage,
                f"a program officer asked to pay tranche {tranche} again",
                deadlines={"settlement_due": due},
            )

    async def _escalate_payment(self, tranche: int, failures: int, failure: str) -> None:
        """A payment failed for good: wait for a program officer's re-send."""
        times = "" if failures == 1 else f" {failures} times"
        self._enter(
            Stage.PAYMENT_ESCALATED,
            f"payment of tranche {tranche} failed{times} ({failure}); a program officer must act",
            escalation=("payment_failing", f"tranche {tranche} failed{times}: {failure}"),
        )
        await self._wait(lambda: self._resend is not None)
        request = self._resend
        assert request is not None
        self._resend = None
        request.accept(f"tranche {tranche} instructed again")

    def _account_payment(self, command: Command) -> str | None:
        """Book a payment's outcome once; the failure reason, or None when it settled."""
        answer = self._answer_to(command)
        if isinstance(answer, DisbursementSettled):
            if not command.accounted and answer.tranche not in self._paid_tranches:
                self._paid_tranches[answer.tranche] = answer.amount
                self._paid = self._paid + answer.amount
            command.accounted = True
            return None
        command.accounted = True
        return answer.reason if isinstance(answer, DisbursementFailed) else "unexpected answer"

    # -- refunds, releases, award changes -----------------------------------------------------

    async def _refund(self, amount: Money, step: str, reason: str) -> None:
        command = await self._transact(
            topics.REQUEST_REFUND,
            "refund",
            RequestRefund(
                **self._ledger("refund", step, key=f"refund:{step}"), amount=amount, reason=reason
            ),
            interruptible=False,
        )
        answer = self._answer_to(command)
        refunded = answer.amount if isinstance(answer, RefundRequested) else amount
        self._refunded = self._refunded + refunded

    async def _release(self, step: str, reason: str) -> None:
        command = await self._transact(
            topics.RELEASE_FUNDS,
            "release",
            ReleaseFunds(
                **self._ledger("release", step, key=f"release:{step}"), reason=reason, amount=None
            ),
            interruptible=False,
        )
        answer = self._answer_to(command)
        if isinstance(answer, FundsReleased) and self._reserved is not None:
            left = self._reserved - answer.amount
            self._reserved = left if left.amount_minor > 0 else self._zero

    async def _change_award(self, new_award: Money, amendment_id: str, reason: str) -> str:
        """Adjust the reservation, spread the rest over the unpaid tranches, refund any excess."""
        award = self._award
        assert award is not None
        command = await self._transact(
            topics.ADJUST_AWARD,
            "adjust-award",
            AdjustAward(
                **self._ledger("adjust-award", amendment_id, key=f"award:{amendment_id}"),
                new_award=new_award,
                reason=reason,
            ),
        )
        answer = self._answer_to(command)
        if isinstance(answer, AwardAdjusted):
            self._reserved = answer.reserved
        self._tranches = rescheduled_tranches(
            self._tranches, set(self._paid_tranches), new_award, self._paid
        )
        self._award = new_award
        excess = self._paid - self._refunded - new_award
        if excess.amount_minor > 0:
            await self._refund(
                excess,
                f"amendment-{amendment_id}",
                f"award reduced to {new_award} below what was paid",
            )
        return f"award changed from {award} to {new_award}"

    # -- 10. close-out, and undoing for a withdrawal ----------------------------------------

    async def _close_out(self) -> None:
        award = self._award
        assert award is not None
        final = {
            index: amount
            for index, amount in enumerate(self._tranches, start=1)
            if index not in self._paid_tranches
        }
        plan = domain.close_out(
            award=award,
            paid=self._paid,
            refunded=self._refunded,
            final_tranches=final,
            actual_spending=self._actual_spending,
        )
        for index, amount in plan.final_tranches.items():
            await self._pay(index, amount, Stage.FINAL_PAYMENT)
        self._enter(Stage.CLOSING, "settling what was not spent")
        if plan.refund.amount_minor > 0:
            await self._refund(
                plan.refund, "underspend", f"actual spending {self._actual_spending} below paid"
            )
        if self._reserved is not None and self._reserved > self._paid:
            await self._release("close-out", "close-out: unspent funds")
        self._enter(Stage.CLOSED, "the grant is closed")

    async def _undo_for_withdrawal(self) -> None:
        request = self._withdrawal
        assert request is not None
        self._withdrawal = None
        reason = request.value.reason
        request.accept("the application is being withdrawn")
        self._enter(Stage.WITHDRAWING, f"withdrawn: {reason}")
        # A payment in flight decides what must be refunded: wait for its outcome.
        for command in list(self._commands.values()):
            if command.step == "pay" and not command.accounted:
                if not self._answered(command) and not command.closed:
                    await self._wait(
                        functools.partial(self._answered, command),
                        until=workflow.now() + self._rules.payment_settlement_period,
                        interruptible=False,
                    )
                if self._answered(command):
                    self._account_payment(command)
        for command in self._commands.values():
            command.closed = True
        paid = self._paid - self._refunded
        if paid.amount_minor > 0:
            await self._refund(paid, "withdrawn", f"application withdrawn: {reason}")
        if self._reservation_requested:
            await self._release("withdrawn", f"application withdrawn: {reason}")
        self._enter(
            Stage.WITHDRAWN,
            f"withdrawn: {reason}"
            + (f"; refund of {paid} requested" if paid.amount_minor > 0 else ""),
        )
