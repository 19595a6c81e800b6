"""Paying tranches: the one retry loop towards finance, and finance's answers.

The PayTranche contract (one owner per retry loop: disbursement alone retries finance)

- ``PayTranche`` (idempotency key ``<application>:<tranche>``) moves the tranche from the
  reservation into payment and instructs finance (``PaymentInstructed``, instruction id =
  the key). While finance fails the payment or leaves it unanswered past the settlement
  deadline, disbursement sends the same instruction again, up to ``max_payment_attempts``
  sends, and publishes NOTHING to the workflow meanwhile.
- ``DisbursementSettled`` answers the command once finance settles the instruction.
- ``DisbursementFailed`` answers it only when the payment has failed for good: finance
  refused the last attempt (the money goes back into the reservation), or no attempt was
  answered (escalated: the money stays in payment, as finance may still pay it; a late
  settlement is applied and answered with ``DisbursementSettled``). A tranche that cannot
  be instructed at all (nothing reserved, no exchange rate) is refused at once with
  ``DisbursementFailed`` and ``attempts`` 0.
- The same command again (same ``command_id``) is not handled again: it gets the answers
  published so far (shared command receipts), so nothing while the payment is retried.
- A new ``PayTranche`` with the same key (the workflow sends one when a program officer
  asks to pay again) starts a fresh round of attempts for the same instruction after a
  failure for good; for a settled instruction it gets the settlement again; while a round
  runs it takes over that round's answer. Never a second payment: the ledger applies one
  settlement per instruction and counts any other as a duplicate.

Answers are filed under the subject of the command whose round it is (its ``command_id``),
also when finance's answer or the deadline clock causes them.
"""

from __future__ import annotations

import dataclasses

from services.disbursement.domain import (
    Disposition,
    Instruction,
    InstructionStatus,
    Refusal,
    decide_payment,
    failure_disposition,
    failure_posting,
    settlement_conflicts,
    settlement_posting,
)
from services.disbursement.persistence import DisbursementStore, payment_receipts
from services.disbursement.service.answers import AnswerBook, FinanceAnswers
from shared.contracts.disbursement import DisbursementFailed, DisbursementSettled
from shared.contracts.envelope import Envelope, deterministic_id
from shared.contracts.finance import PaymentFailed, PaymentInstructed, PaymentSettled
from shared.contracts.topics import (
    DISBURSEMENT_FAILED,
    DISBURSEMENT_SETTLED,
    PAYMENT_FAILED,
    PAYMENT_INSTRUCTED,
    PAYMENT_SETTLED,
)
from shared.contracts.workflows import PayTranche
from shared.service import Work

PaymentNotice = PaymentSettled | PaymentFailed


class Payments(FinanceAnswers):
    async def pay(self, work: Work, event: Envelope[PayTranche]) -> None:
        """Instruct finance to pay a tranche; the answer comes when the payment is decided."""
        command = event.payload
        store = DisbursementStore(work.session)
        await store.lock_program(command.program_code, command.cycle)
        instruction = await store.instruction(command.idempotency_key, lock=True)
        if instruction is not None:
            await self._pay_again(work, event, instruction)
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
            await self._refuse_tranche(work, command, decision.reason)
            return
        assert award is not None
        paid_in = await store.payee_currency(command.payee_reference) or award.awarded.currency
        amount, rate = command.amount, None
        if paid_in != command.amount.currency:
            rate = await store.rate(command.amount.currency, paid_in)
            if rate is None:
                await self._refuse_tranche(
                    work,
                    command,
                    f"no exchange rate from {command.amount.currency} to {paid_in}: "
                    "a program officer must set one",
                )
                return
            amount = command.amount.converted(paid_in, rate)
        await self.post_for_command(work, decision, command, award.awarded.currency)
        instruction = Instruction(
            instruction_id=command.idempotency_key,
            application_id=command.application_id,
            program_code=command.program_code,
            cycle=command.cycle,
            tranche=command.tranche,
            command_id=command.command_id,
            correlation_id=event.correlation_id,
            payee_reference=command.payee_reference,
            amount=amount,
            award_amount=command.amount,
            fx_rate=rate,
            value_date=work.now.date(),
            memo=command.memo,
            status=InstructionStatus.PENDING,
            attempts=1,
            sends=1,
            due_at=work.now + self.settings.settlement_deadline,
            last_error=None,
            finance_reference=None,
            settled_amount=None,
            settled_at=None,
            created_at=work.now,
        )
        await store.add_instruction(instruction)
        await self._send_instruction(work, instruction)

    async def _pay_again(
        self, work: Work, event: Envelope[PayTranche], instruction: Instruction
    ) -> None:
        """A new command for an instruction that exists: answer, take over, or a new round."""
        command = event.payload
        store = DisbursementStore(work.session)
        if instruction.status is InstructionStatus.SETTLED:
            settled = _settled(instruction, command.command_id)
            await work.answer(DISBURSEMENT_SETTLED, settled, application_id=command.application_id)
            return
        if instruction.status is InstructionStatus.PENDING:
            # A round is running: its answer goes to the newest command.
            await store.save_instruction(
                dataclasses.replace(
                    instruction,
                    command_id=command.command_id,
                    correlation_id=event.correlation_id,
                )
            )
            return
        if instruction.status is InstructionStatus.FAILED:
            # The failure put the money back into the reservation: take it out again.
            decision = decide_payment(
                await store.award(instruction.application_id),
                program_code=instruction.program_code,
                cycle=instruction.cycle,
                tranche=instruction.tranche,
                amount=instruction.award_amount,
            )
            if isinstance(decision, Refusal):
                await self._refuse_tranche(work, command, decision.reason)
                return
            await self.post_for_instruction(work, decision, instruction)
        retried = instruction.new_round(
            command.command_id, event.correlation_id, work.now, self.settings.settlement_deadline
        )
        await store.save_instruction(retried)
        await self._send_instruction(work, retried)

    async def _refuse_tranche(self, work: Work, command: PayTranche, reason: str) -> None:
        """A tranche that cannot be instructed: failed for good before any attempt."""
        failed = DisbursementFailed(
            application_id=command.application_id,
            command_id=command.command_id,
            tranche=command.tranche,
            instruction_id=command.idempotency_key,
            reason=reason,
            attempts=0,
        )
        await work.answer(DISBURSEMENT_FAILED, failed, application_id=command.application_id)

    async def _send_instruction(self, work: Work, instruction: Instruction) -> None:
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
        await work.publish(
            PAYMENT_INSTRUCTED,
            instructed,
            application_id=instruction.application_id,
            event_id=deterministic_id(instruction.instruction_id, "send", str(instruction.sends)),
            correlation_id=instruction.correlation_id,
        )

    async def _answer_round(
        self, work: Work, instruction: Instruction, answer: DisbursementSettled | DisbursementFailed
    ) -> None:
        """Answer the command whose round ``instruction`` is in, whatever caused the answer."""
        settled = isinstance(answer, DisbursementSettled)
        await work.publish(
            DISBURSEMENT_SETTLED if settled else DISBURSEMENT_FAILED,
            answer,
            application_id=instruction.application_id,
            subject=instruction.command_id,
            correlation_id=instruction.correlation_id,
        )

    # Answers from finance ---------------------------------------------------------------------

    @property
    def payment_answers(self) -> AnswerBook[Instruction, PaymentSettled, PaymentFailed]:
        return AnswerBook(
            noun="payment instruction",
            topics=(PAYMENT_SETTLED, PAYMENT_FAILED),
            receipts=payment_receipts,
            find=lambda store, instruction_id, lock: store.instruction(instruction_id, lock=lock),
            done=PaymentSettled,
            apply_done=self._settle,
            apply_undone=self._fail,
            answer_key="instruction_id",
            held="the settlement of {} is for another amount or currency than instructed: "
            "not applied, held for reconciliation",
        )

    async def finance_answered(self, work: Work, event: Envelope[PaymentNotice]) -> None:
        """A settlement or failure from finance on Kafka."""
        await self.answered_on_kafka(work, self.payment_answers, event)

    async def _settle(
        self, work: Work, instruction: Instruction, notice: PaymentSettled
    ) -> Disposition:
        if instruction.status is InstructionStatus.SETTLED:
            return Disposition.DUPLICATE
        if notice.amount != instruction.amount:
            await self._hold(work, instruction, notice)
            return Disposition.MISMATCH
        store = DisbursementStore(work.session)
        if instruction.status is InstructionStatus.FAILED and settlement_conflicts(
            instruction, await store.award(instruction.application_id)
        ):
            return Disposition.CONFLICT
        posting = settlement_posting(
            instruction.application_id, instruction.award_amount.amount_minor, instruction.status
        )
        assert posting is not None
        await self.post_for_instruction(work, posting, instruction)
        await store.save_instruction(
            dataclasses.replace(
                instruction,
                status=InstructionStatus.SETTLED,
                finance_reference=notice.finance_reference,
                settled_amount=notice.amount,
                settled_at=work.now,
            )
        )
        await self._answer_round(
            work,
            instruction,
            _settled(instruction, instruction.command_id, notice.finance_reference),
        )
        return Disposition.APPLIED

    async def _hold(self, work: Work, instruction: Instruction, notice: PaymentSettled) -> None:
        """Finance paid something else than instructed: nothing moves in the ledger, the
        instruction is not sent again (finance may have paid), and the payment is escalated
        (the workflow puts it on the officers' attention list; reconciliation lists it as an
        amount mismatch). A settlement of the instructed amount still applies later."""
        if instruction.status is not InstructionStatus.PENDING:
            return
        await DisbursementStore(work.session).save_instruction(
            dataclasses.replace(instruction, status=InstructionStatus.ESCALATED)
        )
        reason = (
            f"finance settled {notice.amount} for an instruction of {instruction.amount}: "
            "not applied, held for a program officer"
        )
        await self._answer_round(work, instruction, _failed(instruction, reason))

    async def _fail(
        self, work: Work, instruction: Instruction, notice: PaymentFailed
    ) -> Disposition:
        store = DisbursementStore(work.session)
        disposition = failure_disposition(instruction, self.settings.max_payment_attempts)
        if disposition is Disposition.RETRYING:
            # The deadline clock sends it again once the retry delay is over.
            await store.save_instruction(
                dataclasses.replace(
                    instruction,
                    due_at=work.now + self.settings.retry_delay,
                    last_error=notice.reason,
                )
            )
            return disposition
        if disposition is Disposition.IGNORED:
            return disposition
        await self.post_for_instruction(
            work,
            failure_posting(instruction.application_id, instruction.award_amount.amount_minor),
            instruction,
        )
        await store.save_instruction(
            dataclasses.replace(
                instruction, status=InstructionStatus.FAILED, last_error=notice.reason
            )
        )
        # An escalated instruction's failure for good was answered when it was escalated.
        if instruction.status is InstructionStatus.PENDING:
            failed = _failed(instruction, f"finance refused the payment: {notice.reason}")
            await self._answer_round(work, instruction, failed)
        return disposition

    # The settlement deadline ------------------------------------------------------------------

    async def resend_overdue(self, work: Work, limit: int = 100) -> int:
        """Send again what is past its deadline, or answer a payment out of attempts as failed.

        How many instructions it handled (at most ``limit``).
        """
        store = DisbursementStore(work.session)
        overdue = await store.overdue_instructions(work.now, limit)
        for instruction in overdue:
            if not instruction.out_of_attempts(self.settings.max_payment_attempts):
                again = instruction.sent_again(work.now, self.settings.settlement_deadline)
                await store.save_instruction(again)
                await self._send_instruction(work, again)
                continue
            await store.save_instruction(
                dataclasses.replace(instruction, status=InstructionStatus.ESCALATED)
            )
            last = f" (last error: {instruction.last_error})" if instruction.last_error else ""
            reason = (
                f"finance did not settle the payment after {instruction.attempts} "
                f"attempts{last}: escalated to a program officer"
            )
            await self._answer_round(work, instruction, _failed(instruction, reason))
        return len(overdue)


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


def _failed(instruction: Instruction, reason: str) -> DisbursementFailed:
    return DisbursementFailed(
        application_id=instruction.application_id,
        command_id=instruction.command_id,
        tranche=instruction.tranche,
        instruction_id=instruction.instruction_id,
        reason=reason,
        attempts=instruction.attempts,
    )
