"""Use cases of the disbursement service, each over the caller's unit of work.

Commands from the workflow are answered once: the first result is stored with the command,
and a repeated command (same ``command_id``) re-emits it with the same event id. A new
command with the idempotency key of an earlier success gets that success again; a refusal
does not use up the key, so a waitlisted application can ask again later.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

import sqlalchemy.event
from sqlalchemy.ext.asyncio import AsyncSession

from services.disbursement.domain import (
    Account,
    Award,
    Balances,
    Disposition,
    InstructionStatus,
    Posting,
    Refusal,
    budget_change,
    convert,
    decide_adjustment,
    decide_payment,
    decide_refund,
    decide_release,
    decide_reservation,
    failure_posting,
    fx_difference,
    parse_rate,
    settlement_posting,
)
from services.disbursement.persistence import DisbursementStore, Instruction, StoredCommand
from services.disbursement.schemas import (
    BudgetReport,
    Finding,
    FindingKind,
    FxSummary,
    LedgerLine,
    PayeeView,
    PaymentHistory,
    PaymentView,
    RateView,
    ReceiptView,
    Reconciliation,
)
from services.disbursement.settings import DisbursementOptions
from shared.contracts.disbursement import (
    AwardAdjusted,
    DisbursementFailed,
    DisbursementSettled,
    FundsRefused,
    FundsReleased,
    FundsReserved,
    RefundRequested,
)
from shared.contracts.envelope import Envelope, deterministic_id, new_envelope
from shared.contracts.finance import PaymentFailed, PaymentInstructed, PaymentSettled
from shared.contracts.money import MINOR_UNIT_EXPONENT, Money
from shared.contracts.topics import (
    AWARD_ADJUSTED,
    DISBURSEMENT_FAILED,
    DISBURSEMENT_SETTLED,
    FUNDS_REFUSED,
    FUNDS_RELEASED,
    FUNDS_RESERVED,
    PAYMENT_INSTRUCTED,
    REFUND_REQUESTED,
    TOPICS_BY_NAME,
    Topic,
)
from shared.contracts.workflows import (
    AdjustAward,
    LedgerCommand,
    PayTranche,
    ReleaseFunds,
    RequestRefund,
    ReserveFunds,
)
from shared.messaging.outbox import Outbox

PRODUCER: Final = "disbursement"

# The catalog's programs, for the 2027 cycle and the demo catalog's cycle, so that
# `grantflow up` can fund applications at once.
DEMO_CYCLES: Final = ("2027", "demo")
DEMO_BUDGETS: Final = {
    "AUPAP": 50_000_000,
    "YAP-TNA": 50_000_000,
    "LEADING-ASIA": 50_000_000,
    "SINO-AFRICAN": 50_000_000,
    "CITIZEN": 25_000_000,
}

Answer = (
    FundsReserved
    | FundsRefused
    | FundsReleased
    | AwardAdjusted
    | DisbursementSettled
    | DisbursementFailed
    | RefundRequested
)
Clock = Callable[[], datetime]


class CommandKind(StrEnum):
    RESERVE = "reserve"
    RELEASE = "release"
    PAY = "pay"
    REFUND = "refund"
    ADJUST = "adjust"


class BudgetError(Exception):
    """An officer's budget change that cannot be made; ``str(error)`` says why."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class Disbursement:
    def __init__(
        self, outbox: Outbox, options: DisbursementOptions, *, clock: Clock = utc_now
    ) -> None:
        self.outbox = outbox
        self.options = options
        self.clock = clock

    # Answers ----------------------------------------------------------------------------------

    async def _answer(
        self,
        session: AsyncSession,
        topic: Topic,
        payload: Answer,
        *,
        cause: Envelope[Any] | None,
        correlation_id: str | None = None,
    ) -> None:
        """Publish the answer to a command; the same answer again goes out as the first did."""
        event_id = deterministic_id(payload.command_id, "result", topic.name)
        if await DisbursementStore(session).requeue_event(str(event_id)):
            sqlalchemy.event.listen(
                session.sync_session,
                "after_commit",
                lambda _session: self.outbox.committed.set(),
                once=True,
            )
            return
        envelope: Envelope[Any] = new_envelope(
            payload,
            producer=PRODUCER,
            application_id=payload.application_id,
            event_id=event_id,
            causation=cause,
            correlation_id=correlation_id,
            occurred_at=self.clock(),
        )
        await self.outbox.add(session, topic, envelope)

    async def _replay(
        self, session: AsyncSession, stored: StoredCommand, cause: Envelope[Any]
    ) -> None:
        assert stored.result_topic is not None and stored.result_payload is not None
        topic = TOPICS_BY_NAME[stored.result_topic]
        payload = topic.payload.model_validate_json(stored.result_payload)
        assert isinstance(payload, Answer)
        await self._answer(session, topic, payload, cause=cause)

    async def _conclude(
        self,
        session: AsyncSession,
        store: DisbursementStore,
        envelope: Envelope[Any],
        kind: CommandKind,
        outcome: str,
        topic: Topic,
        payload: Answer,
        *,
        known: bool = False,
    ) -> None:
        """Store the command's result and publish it."""
        command = envelope.payload
        if known:
            await store.store_result(
                command.command_id, outcome, topic.name, payload.model_dump_json()
            )
        else:
            await store.record_command(
                command_id=command.command_id,
                kind=kind.value,
                idempotency_key=command.idempotency_key,
                application_id=command.application_id,
                outcome=outcome,
                result_topic=topic.name,
                result_payload=payload.model_dump_json(),
                now=self.clock(),
            )
        await self._answer(session, topic, payload, cause=envelope)

    async def _already_answered(
        self,
        session: AsyncSession,
        store: DisbursementStore,
        envelope: Envelope[Any],
        kind: CommandKind,
    ) -> bool:
        """Re-emit the result of a repeated command, or of an earlier success with its key."""
        command = envelope.payload
        stored = await store.command(command.command_id)
        if stored is not None:
            if stored.result_topic is not None:
                await self._replay(session, stored, envelope)
            return True
        prior = await store.successful_command(kind.value, command.idempotency_key)
        if prior is None or prior.result_topic is None or prior.result_payload is None:
            return False
        topic = TOPICS_BY_NAME[prior.result_topic]
        payload = topic.payload.model_validate_json(prior.result_payload)
        again = payload.model_copy(update={"command_id": command.command_id})
        assert isinstance(again, Answer)
        await self._conclude(session, store, envelope, kind, "done", topic, again)
        return True

    async def _post(
        self,
        store: DisbursementStore,
        posting: Posting,
        *,
        program_code: str,
        cycle: str,
        currency: str,
        application_id: str | None,
        reference: str | None,
    ) -> None:
        await store.post(
            posting,
            program_code=program_code,
            cycle=cycle,
            currency=currency,
            application_id=application_id,
            reference=reference,
            now=self.clock(),
        )

    async def _post_for_command(
        self, store: DisbursementStore, posting: Posting, command: LedgerCommand, currency: str
    ) -> None:
        """Post against the command's program and award, keyed by its idempotency key."""
        await self._post(
            store,
            posting,
            program_code=command.program_code,
            cycle=command.cycle,
            currency=currency,
            application_id=command.application_id,
            reference=command.idempotency_key,
        )

    async def _post_for_instruction(
        self, store: DisbursementStore, posting: Posting, instruction: Instruction
    ) -> None:
        """Post against the instruction's award in the program currency, keyed by its id."""
        await self._post(
            store,
            posting,
            program_code=instruction.program_code,
            cycle=instruction.cycle,
            currency=instruction.award_amount.currency,
            application_id=instruction.application_id,
            reference=instruction.instruction_id,
        )

    # Commands from the workflow ---------------------------------------------------------------

    async def reserve(self, session: AsyncSession, envelope: Envelope[ReserveFunds]) -> None:
        command = envelope.payload
        store = DisbursementStore(session)
        budget = await store.lock_budget(command.program_code, command.cycle)
        if await self._already_answered(session, store, envelope, CommandKind.RESERVE):
            return
        award = await store.award(command.application_id)
        decision = decide_reservation(
            budget,
            award,
            application_id=command.application_id,
            program_code=command.program_code,
            cycle=command.cycle,
            amount=command.amount,
        )
        if isinstance(decision, Refusal):
            available = (
                budget.balances.money(Account.AVAILABLE)
                if budget is not None
                else Money.zero(command.amount.currency)
            )
            refused = FundsRefused(
                application_id=command.application_id,
                command_id=command.command_id,
                amount=command.amount,
                available=available,
                reason=decision.reason,
            )
            await self._conclude(
                session, store, envelope, CommandKind.RESERVE, "refused", FUNDS_REFUSED, refused
            )
            return
        assert budget is not None
        await self._post_for_command(store, decision.posting, command, budget.currency)
        await store.save_award(
            command.application_id,
            command.program_code,
            command.cycle,
            command.amount,
            self.clock(),
        )
        reserved = FundsReserved(
            application_id=command.application_id,
            command_id=command.command_id,
            amount=decision.amount,
        )
        await self._conclude(
            session, store, envelope, CommandKind.RESERVE, "done", FUNDS_RESERVED, reserved
        )

    async def release(self, session: AsyncSession, envelope: Envelope[ReleaseFunds]) -> None:
        command = envelope.payload
        store = DisbursementStore(session)
        currency = await store.lock_program(command.program_code, command.cycle)
        if await self._already_answered(session, store, envelope, CommandKind.RELEASE):
            return
        release = decide_release(
            await store.award(command.application_id),
            program_code=command.program_code,
            cycle=command.cycle,
            amount=command.amount,
            budget_currency=currency,
        )
        if release.posting is not None and currency is not None:
            await self._post_for_command(store, release.posting, command, currency)
        released = FundsReleased(
            application_id=command.application_id,
            command_id=command.command_id,
            amount=release.amount,
            program_code=command.program_code,
            cycle=command.cycle,
        )
        await self._conclude(
            session, store, envelope, CommandKind.RELEASE, "done", FUNDS_RELEASED, released
        )

    async def refund(self, session: AsyncSession, envelope: Envelope[RequestRefund]) -> None:
        command = envelope.payload
        store = DisbursementStore(session)
        currency = await store.lock_program(command.program_code, command.cycle)
        if await self._already_answered(session, store, envelope, CommandKind.REFUND):
            return
        posting, amount = decide_refund(
            await store.award(command.application_id),
            program_code=command.program_code,
            cycle=command.cycle,
            amount=command.amount,
        )
        if posting is not None and currency is not None:
            await self._post_for_command(store, posting, command, currency)
        reason = command.reason
        if amount != command.amount:
            reason = f"{reason} ({command.amount} asked, {amount} was paid)"
        requested = RefundRequested(
            application_id=command.application_id,
            command_id=command.command_id,
            amount=amount,
            reason=reason,
        )
        await self._conclude(
            session, store, envelope, CommandKind.REFUND, "done", REFUND_REQUESTED, requested
        )

    async def adjust(self, session: AsyncSession, envelope: Envelope[AdjustAward]) -> None:
        command = envelope.payload
        store = DisbursementStore(session)
        budget = await store.lock_budget(command.program_code, command.cycle)
        if await self._already_answered(session, store, envelope, CommandKind.ADJUST):
            return
        decision = decide_adjustment(
            budget,
            await store.award(command.application_id),
            program_code=command.program_code,
            cycle=command.cycle,
            new_award=command.new_award,
        )
        if isinstance(decision, Refusal):
            available = (
                budget.balances.money(Account.AVAILABLE)
                if budget is not None
                else Money.zero(command.new_award.currency)
            )
            refused = FundsRefused(
                application_id=command.application_id,
                command_id=command.command_id,
                amount=command.new_award,
                available=available,
                reason=decision.reason,
            )
            await self._conclude(
                session, store, envelope, CommandKind.ADJUST, "refused", FUNDS_REFUSED, refused
            )
            return
        assert budget is not None
        if decision.posting is not None:
            await self._post_for_command(store, decision.posting, command, budget.currency)
        await store.save_award(
            command.application_id,
            command.program_code,
            command.cycle,
            decision.new_award,
            self.clock(),
        )
        adjusted = AwardAdjusted(
            application_id=command.application_id,
            command_id=command.command_id,
            new_award=decision.new_award,
            reserved=decision.reserved,
        )
        await self._conclude(
            session, store, envelope, CommandKind.ADJUST, "done", AWARD_ADJUSTED, adjusted
        )

    async def pay(self, session: AsyncSession, envelope: Envelope[PayTranche]) -> None:
        """Instruct finance to pay a tranche; the answer comes when finance does."""
        command = envelope.payload
        store = DisbursementStore(session)
        await store.lock_program(command.program_code, command.cycle)
        stored = await store.command(command.command_id)
        if stored is not None and stored.result_topic is not None:
            await self._replay(session, stored, envelope)
            return
        instruction = await store.instruction(command.idempotency_key, lock=True)
        if instruction is not None:
            await self._pay_again(session, store, envelope, instruction, known=stored is not None)
            return
        award = await store.award(command.application_id)
        decision = decide_payment(
            award,
            program_code=command.program_code,
            cycle=command.cycle,
            tranche=command.tranche,
            amount=command.amount,
        )
        if isinstance(decision, Refusal):
            await self._refuse_payment(session, store, envelope, decision.reason)
            return
        assert award is not None
        paid_in = await store.payee_currency(command.payee_reference) or award.awarded.currency
        amount, rate = command.amount, None
        if paid_in != command.amount.currency:
            rate = await store.rate(command.amount.currency, paid_in)
            if rate is None:
                await self._refuse_payment(
                    session,
                    store,
                    envelope,
                    f"no exchange rate from {command.amount.currency} to {paid_in}: "
                    "a program officer must set one",
                )
                return
            amount = convert(command.amount, parse_rate(rate), paid_in)
        now = self.clock()
        await self._post_for_command(store, decision, command, award.awarded.currency)
        instruction = Instruction(
            instruction_id=command.idempotency_key,
            application_id=command.application_id,
            program_code=command.program_code,
            cycle=command.cycle,
            tranche=command.tranche,
            command_id=command.command_id,
            correlation_id=envelope.correlation_id,
            payee_reference=command.payee_reference,
            amount=amount,
            award_amount=command.amount,
            fx_rate=rate,
            value_date=now.date(),
            memo=command.memo,
            status=InstructionStatus.PENDING,
            attempts=1,
            sends=1,
            due_at=now + self.options.settlement_deadline,
            last_error=None,
            finance_reference=None,
            settled_amount=None,
            settled_at=None,
            created_at=now,
        )
        await store.add_instruction(instruction)
        await self._record_pending(store, command)
        await self._send(session, instruction, cause=envelope)

    async def _record_pending(self, store: DisbursementStore, command: PayTranche) -> None:
        await store.record_command(
            command_id=command.command_id,
            kind=CommandKind.PAY.value,
            idempotency_key=command.idempotency_key,
            application_id=command.application_id,
            outcome="pending",
            result_topic=None,
            result_payload=None,
            now=self.clock(),
        )

    async def _refuse_payment(
        self,
        session: AsyncSession,
        store: DisbursementStore,
        envelope: Envelope[PayTranche],
        reason: str,
    ) -> None:
        command = envelope.payload
        failed = DisbursementFailed(
            application_id=command.application_id,
            command_id=command.command_id,
            tranche=command.tranche,
            instruction_id=command.idempotency_key,
            reason=reason,
            attempts=0,
        )
        await self._conclude(
            session, store, envelope, CommandKind.PAY, "refused", DISBURSEMENT_FAILED, failed
        )

    async def _pay_again(
        self,
        session: AsyncSession,
        store: DisbursementStore,
        envelope: Envelope[PayTranche],
        instruction: Instruction,
        *,
        known: bool,
    ) -> None:
        """A pay command for an instruction that exists: answer, wait, or try once more."""
        command = envelope.payload
        if instruction.status is InstructionStatus.SETTLED:
            settled = _settled(instruction, command.command_id)
            await self._conclude(
                session,
                store,
                envelope,
                CommandKind.PAY,
                "done",
                DISBURSEMENT_SETTLED,
                settled,
                known=known,
            )
            return
        if known:
            return  # the same command, still waiting for finance
        if instruction.status is InstructionStatus.PENDING:
            # Answer the newest command when finance answers.
            await store.update_instruction(
                instruction.instruction_id, command_id=command.command_id
            )
            await self._record_pending(store, command)
            return
        # Failed or escalated: a new command (an officer's decision) tries once more.
        now = self.clock()
        if instruction.status is InstructionStatus.FAILED:
            award = await store.award(instruction.application_id)
            decision = decide_payment(
                award,
                program_code=instruction.program_code,
                cycle=instruction.cycle,
                tranche=instruction.tranche,
                amount=instruction.award_amount,
            )
            if isinstance(decision, Refusal):
                await self._refuse_payment(session, store, envelope, decision.reason)
                return
            await self._post_for_instruction(store, decision, instruction)
        retried = _replace(
            instruction,
            command_id=command.command_id,
            correlation_id=envelope.correlation_id,
            status=InstructionStatus.PENDING,
            attempts=1,
            sends=instruction.sends + 1,
            due_at=now + self.options.settlement_deadline,
            last_error=None,
        )
        await store.update_instruction(
            instruction.instruction_id,
            command_id=retried.command_id,
            correlation_id=retried.correlation_id,
            status=retried.status,
            attempts=retried.attempts,
            sends=retried.sends,
            due_at=retried.due_at,
            last_error=None,
        )
        await self._record_pending(store, command)
        await self._send(session, retried, cause=envelope)

    async def _send(
        self, session: AsyncSession, instruction: Instruction, *, cause: Envelope[Any] | None
    ) -> None:
        """Publish the instruction; every send has its own event id, the same instruction id."""
        instructed = PaymentInstructed(
            instruction_id=instruction.instruction_id,
            application_id=instruction.application_id,
            payee_reference=instruction.payee_reference,
            amount=instruction.amount,
            award_amount=instruction.award_amount,
            fx_rate=instruction.fx_rate,
            value_date=instruction.value_date,
            memo=instruction.memo,
        )
        envelope: Envelope[Any] = new_envelope(
            instructed,
            producer=PRODUCER,
            application_id=instruction.application_id,
            event_id=deterministic_id(instruction.instruction_id, "send", str(instruction.sends)),
            causation=cause,
            correlation_id=instruction.correlation_id,
            occurred_at=self.clock(),
        )
        await self.outbox.add(session, PAYMENT_INSTRUCTED, envelope)

    # Answers from finance ---------------------------------------------------------------------

    async def record_settlement(
        self,
        session: AsyncSession,
        notice: PaymentSettled | PaymentFailed,
        *,
        channel: str,
        event_id: str | None = None,
        cause: Envelope[Any] | None = None,
    ) -> Disposition:
        """Apply a settlement or failure from finance once, whichever way it arrives."""
        store = DisbursementStore(session)
        found = await store.instruction(notice.instruction_id)
        if found is None:
            disposition = Disposition.UNKNOWN
        else:
            await store.lock_program(found.program_code, found.cycle)
            instruction = await store.instruction(notice.instruction_id, lock=True)
            assert instruction is not None
            if isinstance(notice, PaymentSettled):
                disposition = await self._settle(session, store, instruction, notice, cause)
            else:
                disposition = await self._fail(session, store, instruction, notice, cause)
        settled = isinstance(notice, PaymentSettled)
        await store.add_receipt(
            instruction_id=notice.instruction_id,
            outcome="settled" if settled else "failed",
            disposition=disposition,
            finance_reference=notice.finance_reference,
            amount=notice.amount if isinstance(notice, PaymentSettled) else None,
            reason=notice.reason if isinstance(notice, PaymentFailed) else None,
            channel=channel,
            event_id=event_id,
            now=self.clock(),
        )
        return disposition

    async def is_unknown_settlement(self, session: AsyncSession, event_id: str) -> bool:
        disposition = await DisbursementStore(session).receipt_disposition(event_id)
        return disposition is Disposition.UNKNOWN

    async def _settle(
        self,
        session: AsyncSession,
        store: DisbursementStore,
        instruction: Instruction,
        notice: PaymentSettled,
        cause: Envelope[Any] | None,
    ) -> Disposition:
        if instruction.status is InstructionStatus.SETTLED:
            return Disposition.DUPLICATE
        if instruction.status is InstructionStatus.FAILED:
            award = await store.award(instruction.application_id)
            if award is None or award.balances[Account.RESERVED] < (
                instruction.award_amount.amount_minor
            ):
                return Disposition.CONFLICT
        posting = settlement_posting(
            instruction.application_id, instruction.award_amount.amount_minor, instruction.status
        )
        assert posting is not None
        await self._post_for_instruction(store, posting, instruction)
        await store.update_instruction(
            instruction.instruction_id,
            status=InstructionStatus.SETTLED,
            finance_reference=notice.finance_reference,
            settled_amount_minor=notice.amount.amount_minor,
            settled_currency=notice.amount.currency,
            settled_at=self.clock(),
        )
        settled = _settled(instruction, instruction.command_id, notice.finance_reference)
        await self._conclude_instruction(session, store, instruction, DISBURSEMENT_SETTLED, settled)
        return Disposition.APPLIED

    async def _fail(
        self,
        session: AsyncSession,
        store: DisbursementStore,
        instruction: Instruction,
        notice: PaymentFailed,
        cause: Envelope[Any] | None,
    ) -> Disposition:
        if instruction.status in (InstructionStatus.SETTLED, InstructionStatus.FAILED):
            return Disposition.IGNORED
        final = (
            instruction.status is InstructionStatus.ESCALATED
            or instruction.attempts >= self.options.max_payment_attempts
        )
        if not final:
            await store.update_instruction(
                instruction.instruction_id,
                due_at=self.clock() + self.options.retry_delay,
                last_error=notice.reason,
            )
            return Disposition.RETRYING
        await self._post_for_instruction(
            store,
            failure_posting(instruction.application_id, instruction.award_amount.amount_minor),
            instruction,
        )
        await store.update_instruction(
            instruction.instruction_id, status=InstructionStatus.FAILED, last_error=notice.reason
        )
        if instruction.status is InstructionStatus.PENDING:
            failed = DisbursementFailed(
                application_id=instruction.application_id,
                command_id=instruction.command_id,
                tranche=instruction.tranche,
                instruction_id=instruction.instruction_id,
                reason=f"finance refused the payment: {notice.reason}",
                attempts=instruction.attempts,
            )
            await self._conclude_instruction(
                session, store, instruction, DISBURSEMENT_FAILED, failed
            )
        # An escalated instruction's failure was published when it was escalated.
        return Disposition.FAILED

    async def _conclude_instruction(
        self,
        session: AsyncSession,
        store: DisbursementStore,
        instruction: Instruction,
        topic: Topic,
        payload: DisbursementSettled | DisbursementFailed,
    ) -> None:
        await store.store_result(
            instruction.command_id,
            "done" if topic is DISBURSEMENT_SETTLED else "failed",
            topic.name,
            payload.model_dump_json(),
        )
        await self._answer(
            session, topic, payload, cause=None, correlation_id=instruction.correlation_id
        )

    # The settlement deadline ------------------------------------------------------------------

    async def resend_overdue(self, session: AsyncSession, limit: int = 100) -> int:
        """Re-send instructions past their deadline, or escalate those out of attempts."""
        store = DisbursementStore(session)
        now = self.clock()
        overdue = await store.overdue_instructions(now, limit)
        for instruction in overdue:
            if instruction.attempts < self.options.max_payment_attempts:
                again = _replace(
                    instruction,
                    attempts=instruction.attempts + 1,
                    sends=instruction.sends + 1,
                    due_at=now + self.options.settlement_deadline,
                )
                await store.update_instruction(
                    instruction.instruction_id,
                    attempts=again.attempts,
                    sends=again.sends,
                    due_at=again.due_at,
                )
                await self._send(session, again, cause=None)
                continue
            await store.update_instruction(
                instruction.instruction_id, status=InstructionStatus.ESCALATED
            )
            last = f" (last error: {instruction.last_error})" if instruction.last_error else ""
            failed = DisbursementFailed(
                application_id=instruction.application_id,
                command_id=instruction.command_id,
                tranche=instruction.tranche,
                instruction_id=instruction.instruction_id,
                reason=(
                    f"finance did not settle the payment after {instruction.attempts} "
                    f"attempts{last}: escalated to a program officer"
                ),
                attempts=instruction.attempts,
            )
            await self._conclude_instruction(
                session, store, instruction, DISBURSEMENT_FAILED, failed
            )
        return len(overdue)

    # Budgets, rates and payees (program officers) ---------------------------------------------

    async def set_budget(
        self, session: AsyncSession, program_code: str, cycle: str, amount: Money
    ) -> BudgetReport:
        if amount.amount_minor < 0:
            raise BudgetError("a budget cannot be negative")
        store = DisbursementStore(session)
        budget = await store.lock_budget(program_code, cycle)
        if budget is None:
            await store.create_budget(program_code, cycle, amount.currency, self.clock())
            balances = Balances(amount.currency)
        elif budget.currency != amount.currency:
            raise BudgetError(f"the {program_code} {cycle} budget is in {budget.currency}")
        else:
            balances = budget.balances
        committed = balances.budget - balances[Account.AVAILABLE]
        if amount.amount_minor < committed:
            raise BudgetError(
                f"the budget cannot go below the "
                f"{Money(amount_minor=committed, currency=amount.currency)} already committed"
            )
        posting = budget_change(balances.budget, amount.amount_minor)
        if posting is not None:
            await self._post(
                store,
                posting,
                program_code=program_code,
                cycle=cycle,
                currency=amount.currency,
                application_id=None,
                reference=None,
            )
        report = await self.budget_report(session, program_code, cycle)
        assert report is not None
        return report

    async def ensure_budget(
        self, session: AsyncSession, program_code: str, cycle: str, amount: Money
    ) -> bool:
        """Give a program a budget unless it has one; True when it was created."""
        if await DisbursementStore(session).lock_program(program_code, cycle) is not None:
            return False
        await self.set_budget(session, program_code, cycle, amount)
        return True

    async def seed_demo_budgets(self, session: AsyncSession) -> list[str]:
        created = []
        for cycle in DEMO_CYCLES:
            for program_code, amount_minor in DEMO_BUDGETS.items():
                amount = Money(amount_minor=amount_minor, currency="USD")
                if await self.ensure_budget(session, program_code, cycle, amount):
                    created.append(f"{program_code}/{cycle}")
        return created

    async def budget_report(
        self, session: AsyncSession, program_code: str, cycle: str
    ) -> BudgetReport | None:
        store = DisbursementStore(session)
        currency = await store.budget_currency(program_code, cycle)
        if currency is None:
            return None
        return await self._report(store, program_code, cycle, currency)

    async def budget_reports(self, session: AsyncSession) -> list[BudgetReport]:
        store = DisbursementStore(session)
        return [
            await self._report(store, code, cycle, currency)
            for code, cycle, currency in await store.budget_list()
        ]

    async def _report(
        self, store: DisbursementStore, program_code: str, cycle: str, currency: str
    ) -> BudgetReport:
        balances = await store.program_balances(program_code, cycle, currency)
        foreign = [
            instruction
            for instruction in await store.settled_instructions(program_code, cycle)
            if instruction.fx_rate is not None
        ]
        difference = Money.zero(currency)
        for instruction in foreign:
            difference = difference + (_fx_difference(instruction) or Money.zero(currency))
        return BudgetReport(
            program_code=program_code,
            cycle=cycle,
            currency=currency,
            budget=Money(amount_minor=balances.budget, currency=currency),
            available=balances.money(Account.AVAILABLE),
            reserved=balances.money(Account.RESERVED),
            in_payment=balances.money(Account.IN_PAYMENT),
            disbursed=balances.money(Account.DISBURSED),
            refund_due=balances.money(Account.REFUND_DUE),
            fx=FxSummary(payments=len(foreign), fx_difference=difference),
        )

    async def set_rate(
        self, session: AsyncSession, base: str, quote: str, rate: str, by: str
    ) -> RateView:
        parse_rate(rate)
        now = self.clock()
        await DisbursementStore(session).set_rate(base, quote, rate, by, now)
        return RateView(
            base_currency=base, quote_currency=quote, rate=rate, updated_at=now, updated_by=by
        )

    async def rates(self, session: AsyncSession) -> list[RateView]:
        return [
            RateView(
                base_currency=base, quote_currency=quote, rate=rate, updated_at=at, updated_by=by
            )
            for base, quote, rate, at, by in await DisbursementStore(session).rates()
        ]

    async def set_payee(
        self, session: AsyncSession, payee_reference: str, currency: str
    ) -> PayeeView:
        await DisbursementStore(session).set_payee(payee_reference, currency, self.clock())
        return PayeeView(payee_reference=payee_reference, currency=currency)

    # Reports ----------------------------------------------------------------------------------

    async def payment_history(
        self, session: AsyncSession, application_id: str
    ) -> PaymentHistory | None:
        store = DisbursementStore(session)
        award = await store.award(application_id)
        instructions = await store.application_instructions(application_id)
        if award is None and not instructions:
            return None
        receipts = await store.receipts(
            instruction_ids=[instruction.instruction_id for instruction in instructions]
        )
        payments = [
            PaymentView(
                instruction_id=instruction.instruction_id,
                tranche=instruction.tranche,
                status=instruction.status.value,
                attempts=instruction.attempts,
                sends=instruction.sends,
                payee_reference=instruction.payee_reference,
                amount=instruction.amount,
                award_amount=instruction.award_amount,
                fx_rate=instruction.fx_rate,
                fx_difference=_fx_difference(instruction),
                value_date=instruction.value_date,
                due_at=instruction.due_at,
                last_error=instruction.last_error,
                finance_reference=instruction.finance_reference,
                settled_amount=instruction.settled_amount,
                settled_at=instruction.settled_at,
                receipts=[
                    ReceiptView(
                        outcome=receipt.outcome,
                        disposition=receipt.disposition.value,
                        finance_reference=receipt.finance_reference,
                        amount=receipt.amount,
                        reason=receipt.reason,
                        channel=receipt.channel,
                        received_at=receipt.received_at,
                    )
                    for receipt in receipts
                    if receipt.instruction_id == instruction.instruction_id
                ],
            )
            for instruction in instructions
        ]
        ledger = [
            LedgerLine(
                kind=line.kind,
                reference=line.reference,
                created_at=line.created_at,
                amounts=line.amounts,
            )
            for line in await store.application_transactions(application_id)
        ]
        if award is None:
            first = instructions[0]
            award = Award(
                application_id,
                first.program_code,
                first.cycle,
                Money.zero(first.award_amount.currency),
                Balances(first.award_amount.currency),
            )
        balances = award.balances
        return PaymentHistory(
            application_id=application_id,
            program_code=award.program_code,
            cycle=award.cycle,
            awarded=award.awarded,
            reserved=balances.money(Account.RESERVED),
            in_payment=balances.money(Account.IN_PAYMENT),
            disbursed=balances.money(Account.DISBURSED),
            refund_due=balances.money(Account.REFUND_DUE),
            payments=payments,
            ledger=ledger,
        )

    async def reconciliation(self, session: AsyncSession) -> Reconciliation:
        """Instructions against what finance answered: what an officer must look at."""
        store = DisbursementStore(session)
        now = self.clock()
        findings: list[Finding] = []
        for instruction in await store.unsettled_past(now):
            findings.append(
                Finding(
                    kind="unsettled_past_deadline",
                    instruction_id=instruction.instruction_id,
                    application_id=instruction.application_id,
                    status=instruction.status.value,
                    attempts=instruction.attempts,
                    due_at=instruction.due_at,
                    instructed=instruction.amount,
                    detail=(
                        f"sent {instruction.sends} time(s), no settlement; "
                        + (
                            "escalated"
                            if instruction.status is InstructionStatus.ESCALATED
                            else "will be re-sent"
                        )
                    ),
                )
            )
        flagged = (Disposition.DUPLICATE, Disposition.UNKNOWN, Disposition.CONFLICT)
        receipts = await store.receipts(dispositions=flagged)
        referenced = await store.instructions_by_id(
            sorted({receipt.instruction_id for receipt in receipts})
        )
        for receipt in receipts:
            answered = referenced.get(receipt.instruction_id)
            if receipt.disposition is Disposition.UNKNOWN:
                kind: FindingKind = "unknown_settlement"
                detail = f"finance answered ({receipt.outcome}) an instruction never sent"
            elif receipt.disposition is Disposition.DUPLICATE:
                kind = "duplicate"
                same = answered is not None and (
                    answered.finance_reference == receipt.finance_reference
                )
                detail = (
                    "the same settlement again: counted once"
                    if same
                    else "a second settlement with another reference: not paid twice, "
                    "ask finance to recover it"
                )
            else:
                kind = "conflict"
                detail = "settled after finance had failed it and the reservation was released"
            findings.append(
                Finding(
                    kind=kind,
                    instruction_id=receipt.instruction_id,
                    application_id=answered.application_id if answered else None,
                    status=answered.status.value if answered else None,
                    instructed=answered.amount if answered else None,
                    settled=receipt.amount,
                    finance_reference=receipt.finance_reference,
                    detail=f"{detail} (via {receipt.channel})",
                )
            )
        for settled in await store.settled_instructions():
            if settled.settled_amount is not None and settled.settled_amount != settled.amount:
                findings.append(
                    Finding(
                        kind="amount_mismatch",
                        instruction_id=settled.instruction_id,
                        application_id=settled.application_id,
                        status=settled.status.value,
                        instructed=settled.amount,
                        settled=settled.settled_amount,
                        finance_reference=settled.finance_reference,
                        detail=f"instructed {settled.amount}, finance settled "
                        f"{settled.settled_amount}",
                    )
                )
        counts: dict[str, int] = {}
        for finding in findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        return Reconciliation(generated_at=now, counts=counts, findings=findings)


RECONCILIATION_COLUMNS: Final = (
    "kind",
    "instruction_id",
    "application_id",
    "status",
    "attempts",
    "due_at",
    "instructed_amount",
    "instructed_currency",
    "settled_amount",
    "settled_currency",
    "finance_reference",
    "detail",
)


def reconciliation_csv(report: Reconciliation) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RECONCILIATION_COLUMNS)
    for finding in report.findings:
        writer.writerow(
            [
                finding.kind,
                finding.instruction_id,
                finding.application_id or "",
                finding.status or "",
                "" if finding.attempts is None else finding.attempts,
                finding.due_at.isoformat() if finding.due_at else "",
                _decimal(finding.instructed),
                finding.instructed.currency if finding.instructed else "",
                _decimal(finding.settled),
                finding.settled.currency if finding.settled else "",
                finding.finance_reference or "",
                finding.detail,
            ]
        )
    return out.getvalue()


def _decimal(amount: Money | None) -> str:
    if amount is None:
        return ""
    return str(Decimal(amount.amount_minor).scaleb(-MINOR_UNIT_EXPONENT[amount.currency]))


def _fx_difference(instruction: Instruction) -> Money | None:
    if instruction.fx_rate is None or instruction.settled_amount is None:
        return None
    if instruction.settled_amount.currency != instruction.amount.currency:
        return None
    return fx_difference(
        instruction.award_amount, instruction.settled_amount, Decimal(instruction.fx_rate)
    )


def _settled(
    instruction: Instruction, command_id: str, finance_reference: str | None = None
) -> DisbursementSettled:
    return DisbursementSettled(
        application_id=instruction.application_id,
        command_id=command_id,
        tranche=instruction.tranche,
        amount=instruction.award_amount,
        instruction_id=instruction.instruction_id,
        finance_reference=finance_reference or instruction.finance_reference or "",
    )


def _replace(instruction: Instruction, **changes: Any) -> Instruction:
    return dataclasses.replace(instruction, **changes)
