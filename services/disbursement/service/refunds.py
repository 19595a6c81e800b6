"""Collecting refunds: the request to finance, its reminders, and finance's answers.

The refund loop (one owner per retry loop: disbursement alone reminds finance)

- A ``RequestRefund`` that moves money into ``refund_due`` asks finance to collect it
  (``RefundCollectionRequested`` on ``finance.refund.requested.v1``; the refund id is the
  command's idempotency key). A refund of nothing asks finance for nothing.
- Finance answers ``finance.refund.received.v1`` (all that is outstanding, or a part) or
  ``finance.refund.failed.v1``, on Kafka or the signed webhook. A receipt moves its amount
  from ``refund_due`` back to the program's ``available`` budget once per finance
  reference, however often and by whichever way it arrives, and is announced as
  ``grants.refund.received.v1``. A receipt for more than is outstanding, or in another
  currency, is held (not applied) for reconciliation.
- While the refund is not received in full, disbursement asks again (a reminder) each
  ``refund_reminder_seconds`` (``retry_delay_seconds`` after finance failed to collect),
  up to ``max_refund_reminders`` times; then it publishes ``grants.refund.overdue.v1``,
  which puts the refund on the officers' attention list. It stays due: a later receipt
  still counts, and the one that completes it clears the attention item.
"""

from __future__ import annotations

import dataclasses

from services.disbursement.domain import (
    Account,
    Disposition,
    Refund,
    RefundStatus,
    refund_failure_disposition,
    refund_receipt_disposition,
    refund_received_posting,
)
from services.disbursement.persistence import DisbursementStore, refund_receipts
from services.disbursement.service.answers import AnswerBook, FinanceAnswers
from shared.contracts.disbursement import RefundOverdue, RefundReceived
from shared.contracts.envelope import Envelope, deterministic_id
from shared.contracts.finance import (
    RefundCollected,
    RefundCollectionFailed,
    RefundCollectionRequested,
)
from shared.contracts.money import Money
from shared.contracts.topics import (
    FINANCE_REFUND_FAILED,
    FINANCE_REFUND_RECEIVED,
    FINANCE_REFUND_REQUESTED,
    REFUND_OVERDUE,
    REFUND_RECEIVED,
)
from shared.contracts.workflows import RequestRefund
from shared.service import Work

RefundNotice = RefundCollected | RefundCollectionFailed


class Refunds(FinanceAnswers):
    async def collect_refund(
        self, work: Work, command: RequestRefund, amount: Money, correlation_id: str
    ) -> None:
        """Ask finance to collect what the ledger just moved into ``refund_due``."""
        if amount.amount_minor <= 0:
            return
        store = DisbursementStore(work.session)
        refund = Refund(
            refund_id=command.idempotency_key,
            application_id=command.application_id,
            program_code=command.program_code,
            cycle=command.cycle,
            payer_reference=await store.payee_of(command.application_id) or command.application_id,
            amount=amount,
            received=Money.zero(amount.currency),
            reason=command.reason,
            status=RefundStatus.REQUESTED,
            sends=1,
            due_at=work.now + self.settings.refund_reminder,
            last_error=None,
            correlation_id=correlation_id,
            created_at=work.now,
            received_at=None,
        )
        await store.add_refund(refund)
        await self._send_refund_request(work, refund)

    async def _send_refund_request(self, work: Work, refund: Refund) -> None:
        requested = RefundCollectionRequested(
            refund_id=refund.refund_id,
            application_id=refund.application_id,
            payer_reference=refund.payer_reference,
            amount=refund.amount,
            outstanding=refund.outstanding,
            reminder=refund.reminders,
            reason=refund.reason,
        )
        await work.publish(
            FINANCE_REFUND_REQUESTED,
            requested,
            application_id=refund.application_id,
            event_id=deterministic_id(refund.refund_id, "refund-send", str(refund.sends)),
            correlation_id=refund.correlation_id,
        )

    # Answers from finance ---------------------------------------------------------------------

    @property
    def refund_answers(self) -> AnswerBook[Refund, RefundCollected, RefundCollectionFailed]:
        return AnswerBook(
            noun="refund",
            topics=(FINANCE_REFUND_RECEIVED, FINANCE_REFUND_FAILED),
            receipts=refund_receipts,
            find=lambda store, refund_id, lock: store.refund(refund_id, lock=lock),
            done=RefundCollected,
            apply_done=self._receive,
            apply_undone=self._collection_failed,
            answer_key="refund_id",
            held="the receipt for {} is for more than is outstanding or in another currency: "
            "not applied, held for reconciliation",
        )

    async def refund_answered(self, work: Work, event: Envelope[RefundNotice]) -> None:
        """Money received for a refund, or a failure to collect it, from finance on Kafka."""
        await self.answered_on_kafka(work, self.refund_answers, event)

    async def _receive(self, work: Work, refund: Refund, notice: RefundCollected) -> Disposition:
        store = DisbursementStore(work.session)
        disposition = refund_receipt_disposition(
            refund,
            notice.amount,
            notice.finance_reference,
            await store.applied_refund_references(refund.refund_id),
        )
        if disposition is not Disposition.APPLIED:
            return disposition
        await store.post(
            refund_received_posting(refund.application_id, notice.amount.amount_minor),
            program_code=refund.program_code,
            cycle=refund.cycle,
            currency=refund.amount.currency,
            application_id=refund.application_id,
            reference=refund.refund_id,
            now=work.now,
        )
        received = refund.received + notice.amount
        complete = received == refund.amount
        updated = dataclasses.replace(
            refund,
            received=received,
            status=RefundStatus.RECEIVED if complete else refund.status,
            received_at=work.now,
        )
        await store.save_refund(updated)
        balances = await store.award_balances(refund.application_id, refund.amount.currency)
        answer = RefundReceived(
            application_id=refund.application_id,
            refund_id=refund.refund_id,
            amount=notice.amount,
            received=updated.received,
            outstanding=updated.outstanding,
            refund_due=balances.money(Account.REFUND_DUE),
            finance_reference=notice.finance_reference,
        )
        await work.publish(
            REFUND_RECEIVED,
            answer,
            application_id=refund.application_id,
            event_id=deterministic_id(refund.refund_id, "received", notice.finance_reference),
            correlation_id=refund.correlation_id,
        )
        return disposition

    async def _collection_failed(
        self, work: Work, refund: Refund, notice: RefundCollectionFailed
    ) -> Disposition:
        disposition = refund_failure_disposition(refund, self.settings.max_refund_reminders)
        if disposition is Disposition.IGNORED:
            return disposition
        failed = dataclasses.replace(refund, last_error=notice.reason)
        if disposition is Disposition.RETRYING:
            # The reminder clock asks again once the retry delay is over.
            due_at = min(refund.due_at, work.now + self.settings.retry_delay)
            await DisbursementStore(work.session).save_refund(
                dataclasses.replace(failed, due_at=due_at)
            )
            return disposition
        await self._escalate(
            work,
            failed,
            f"finance could not collect the refund after {refund.reminders} "
            f"reminder(s): {notice.reason}",
        )
        return disposition

    # Reminders and the escalation -------------------------------------------------------------

    async def remind_overdue_refunds(self, work: Work, limit: int = 100) -> int:
        """Ask again for refunds past due, or escalate those out of reminders.

        How many refunds it handled (at most ``limit``).
        """
        store = DisbursementStore(work.session)
        overdue = await store.overdue_refunds(work.now, limit)
        for refund in overdue:
            if refund.may_remind(self.settings.max_refund_reminders):
                again = refund.reminded(work.now, self.settings.refund_reminder)
                await store.save_refund(again)
                await self._send_refund_request(work, again)
                continue
            last = f" (last error: {refund.last_error})" if refund.last_error else ""
            await self._escalate(
                work,
                refund,
                f"{refund.outstanding} of the refund of {refund.amount} is not received after "
                f"{refund.reminders} reminder(s){last}",
            )
        return len(overdue)

    async def _escalate(self, work: Work, refund: Refund, reason: str) -> None:
        """Out of reminders: still due, now a program officer's to follow up."""
        await DisbursementStore(work.session).save_refund(
            dataclasses.replace(refund, status=RefundStatus.OVERDUE)
        )
        overdue = RefundOverdue(
            application_id=refund.application_id,
            program_code=refund.program_code,
            cycle=refund.cycle,
            refund_id=refund.refund_id,
            amount=refund.amount,
            outstanding=refund.outstanding,
            reminders=refund.reminders,
            reason=reason,
        )
        await work.publish(
            REFUND_OVERDUE,
            overdue,
            application_id=refund.application_id,
            event_id=deterministic_id(refund.refund_id, "overdue"),
            correlation_id=refund.correlation_id,
        )
