"""The workflow's ledger commands: reserve, release, refund and adjust an award.

A refund moved into ``refund_due`` is also asked of finance (``refunds``).

Each command is answered once, through the shared command receipts: the answer is filed
under the command (``work.answer``), and the same command sent again (same
``command_id``) gets the same answer event again without being handled a second time.

The ledger adds one rule of its own, by idempotency key: a *new* command with the key of
an earlier success gets that success again, copied with its own ``command_id``, and moves
no money. A refusal does not use up the key, so a waitlisted application can ask again.
"""

from __future__ import annotations

from enum import StrEnum

from services.disbursement.domain import (
    Account,
    Budget,
    Posting,
    Refusal,
    decide_adjustment,
    decide_refund,
    decide_release,
    decide_reservation,
)
from services.disbursement.persistence import DisbursementStore
from services.disbursement.service.refunds import Refunds
from shared.contracts.disbursement import (
    AwardAdjusted,
    FundsRefused,
    FundsReleased,
    FundsReserved,
    RefundRequested,
)
from shared.contracts.envelope import Envelope
from shared.contracts.money import Money
from shared.contracts.topics import (
    AWARD_ADJUSTED,
    FUNDS_REFUSED,
    FUNDS_RELEASED,
    FUNDS_RESERVED,
    REFUND_REQUESTED,
    TOPICS_BY_NAME,
    Topic,
)
from shared.contracts.workflows import (
    AdjustAward,
    LedgerCommand,
    ReleaseFunds,
    RequestRefund,
    ReserveFunds,
)
from shared.service import Work

Success = FundsReserved | FundsReleased | AwardAdjusted | RefundRequested


class CommandKind(StrEnum):
    """The commands whose idempotency keys the ledger remembers (a payment has its
    instruction, keyed the same way)."""

    RESERVE = "reserve"
    RELEASE = "release"
    REFUND = "refund"
    ADJUST = "adjust"


class LedgerCommands(Refunds):
    async def reserve(self, work: Work, event: Envelope[ReserveFunds]) -> None:
        command = event.payload
        store = DisbursementStore(work.session)
        budget = await store.lock_budget(command.program_code, command.cycle)
        if await self._applied_before(work, CommandKind.RESERVE, command):
            return
        queued_at = await store.waitlisted_at(command.application_id)
        submitted_at = queued_at or command.submitted_at or work.now
        decision = decide_reservation(
            budget,
            await store.award(command.application_id),
            application_id=command.application_id,
            program_code=command.program_code,
            cycle=command.cycle,
            amount=command.amount,
            waiting_before=await store.waiting_before(
                command.program_code, command.cycle, command.application_id, submitted_at
            ),
        )
        if isinstance(decision, Refusal):
            if queued_at is None and decision.waitlisted:
                await store.join_waitlist(
                    command.program_code,
                    command.cycle,
                    command.application_id,
                    command.amount,
                    submitted_at,
                )
            await self._refuse_funds(work, command, budget, command.amount, decision.reason)
            return
        if queued_at is not None:
            await store.leave_waitlist(command.application_id)
        assert budget is not None
        await self._award(work, command, budget, decision.posting, command.amount)
        reserved = FundsReserved(
            application_id=command.application_id,
            command_id=command.command_id,
            amount=decision.amount,
        )
        await self._apply(work, CommandKind.RESERVE, command, FUNDS_RESERVED, reserved)

    async def release(self, work: Work, event: Envelope[ReleaseFunds]) -> None:
        command = event.payload
        store = DisbursementStore(work.session)
        currency = await store.lock_program(command.program_code, command.cycle)
        if await self._applied_before(work, CommandKind.RELEASE, command):
            return
        # Withdrawn while waitlisted: it no longer holds up the applications after it.
        await store.leave_waitlist(command.application_id)
        release = decide_release(
            await store.award(command.application_id),
            program_code=command.program_code,
            cycle=command.cycle,
            amount=command.amount,
            budget_currency=currency,
        )
        if release.posting is not None and currency is not None:
            await self.post_for_command(work, release.posting, command, currency)
        released = FundsReleased(
            application_id=command.application_id,
            command_id=command.command_id,
            amount=release.amount,
            program_code=command.program_code,
            cycle=command.cycle,
        )
        await self._apply(work, CommandKind.RELEASE, command, FUNDS_RELEASED, released)

    async def refund(self, work: Work, event: Envelope[RequestRefund]) -> None:
        command = event.payload
        store = DisbursementStore(work.session)
        currency = await store.lock_program(command.program_code, command.cycle)
        if await self._applied_before(work, CommandKind.REFUND, command):
            return
        posting, amount = decide_refund(
            await store.award(command.application_id),
            program_code=command.program_code,
            cycle=command.cycle,
            amount=command.amount,
        )
        if posting is not None and currency is not None:
            await self.post_for_command(work, posting, command, currency)
            await self.collect_refund(work, command, amount, event.correlation_id)
        reason = command.reason
        if amount != command.amount:
            reason = f"{reason} ({command.amount} asked, {amount} was paid)"
        requested = RefundRequested(
            application_id=command.application_id,
            command_id=command.command_id,
            amount=amount,
            reason=reason,
        )
        await self._apply(work, CommandKind.REFUND, command, REFUND_REQUESTED, requested)

    async def adjust(self, work: Work, event: Envelope[AdjustAward]) -> None:
        command = event.payload
        store = DisbursementStore(work.session)
        budget = await store.lock_budget(command.program_code, command.cycle)
        if await self._applied_before(work, CommandKind.ADJUST, command):
            return
        decision = decide_adjustment(
            budget,
            await store.award(command.application_id),
            program_code=command.program_code,
            cycle=command.cycle,
            new_award=command.new_award,
        )
        if isinstance(decision, Refusal):
            await self._refuse_funds(work, command, budget, command.new_award, decision.reason)
            return
        assert budget is not None
        await self._award(work, command, budget, decision.posting, decision.new_award)
        adjusted = AwardAdjusted(
            application_id=command.application_id,
            command_id=command.command_id,
            new_award=decision.new_award,
            reserved=decision.reserved,
        )
        await self._apply(work, CommandKind.ADJUST, command, AWARD_ADJUSTED, adjusted)

    async def _award(
        self,
        work: Work,
        command: LedgerCommand,
        budget: Budget,
        posting: Posting | None,
        awarded: Money,
    ) -> None:
        """Move the reservation with ``posting`` and record what is now awarded."""
        if posting is not None:
            await self.post_for_command(work, posting, command, budget.currency)
        await DisbursementStore(work.session).save_award(
            command.application_id, command.program_code, command.cycle, awarded, work.now
        )

    async def _applied_before(self, work: Work, kind: CommandKind, command: LedgerCommand) -> bool:
        """Answer a new command whose key an earlier success applied with that success."""
        applied = await DisbursementStore(work.session).applied_key(
            kind.value, command.idempotency_key
        )
        if applied is None:
            return False
        topic = TOPICS_BY_NAME[applied.answer_topic]
        earlier = topic.payload.model_validate_json(applied.answer_payload)
        again = earlier.model_copy(update={"command_id": command.command_id})
        await work.answer(topic, again, application_id=command.application_id)
        return True

    async def _apply(
        self,
        work: Work,
        kind: CommandKind,
        command: LedgerCommand,
        topic: Topic,
        answer: Success,
    ) -> None:
        """Answer a success, and remember it as the answer to its idempotency key."""
        await DisbursementStore(work.session).record_applied_key(
            kind.value,
            command.idempotency_key,
            command_id=command.command_id,
            answer_topic=topic.name,
            answer_payload=answer.model_dump_json(),
            now=work.now,
        )
        await work.answer(topic, answer, application_id=command.application_id)

    async def _refuse_funds(
        self,
        work: Work,
        command: LedgerCommand,
        budget: Budget | None,
        amount: Money,
        reason: str,
    ) -> None:
        available = (
            budget.balances.money(Account.AVAILABLE)
            if budget is not None
            else Money.zero(amount.currency)
        )
        refused = FundsRefused(
            application_id=command.application_id,
            command_id=command.command_id,
            amount=amount,
            available=available,
            reason=reason,
        )
        await work.answer(FUNDS_REFUSED, refused, application_id=command.application_id)
