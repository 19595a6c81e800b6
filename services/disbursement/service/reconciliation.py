"""What officers read about payments: an application's history, and reconciliation.

Reconciliation sets the instructions against what finance answered: instructions past
their deadline, settlements of unknown instructions, duplicates, conflicts and settled
amounts that differ from the instruction; and the refunds asked of finance against what
it received: each refund still due, receipts held or for unknown refunds, and the totals
due and received. An unknown settlement that came on Kafka was
dead-lettered (the consumer refuses it), so it is read from the service's dead letters;
one posted to the webhook was answered 404 and recorded as a receipt.
"""

from __future__ import annotations

from services.disbursement.domain import Disposition
from services.disbursement.persistence import DisbursementStore, payment_receipts, refund_receipts
from services.disbursement.schemas import Finding, PaymentHistory, Reconciliation, RefundTotal
from services.disbursement.service.payments import Payments
from services.disbursement.service.refunds import Refunds
from shared.contracts.money import Money
from shared.errors import NotFoundError
from shared.service import Work

FLAGGED = (Disposition.DUPLICATE, Disposition.UNKNOWN, Disposition.CONFLICT, Disposition.MISMATCH)


class PaymentReports(Payments, Refunds):
    """Reads over payments and refunds, and finance's answers about both."""

    async def payment_history(self, work: Work, application_id: str) -> PaymentHistory:
        store = DisbursementStore(work.session)
        award = await store.award(application_id)
        instructions = await store.application_instructions(application_id)
        if award is None and not instructions:
            raise NotFoundError(f"no award or payment for {application_id}")
        receipts = await store.receipts(
            payment_receipts,
            subject_ids=[instruction.instruction_id for instruction in instructions],
        )
        refunds = await store.refunds(application_id=application_id)
        refunds_received = await store.receipts(
            refund_receipts, subject_ids=[refund.refund_id for refund in refunds]
        )
        return PaymentHistory.of(
            application_id,
            award,
            instructions,
            receipts,
            await store.application_transactions(application_id),
            (refunds, refunds_received),
        )

    async def reconciliation(self, work: Work) -> Reconciliation:
        """Instructions against what finance answered: what an officer must look at."""
        store = DisbursementStore(work.session)
        findings = [Finding.unsettled(late) for late in await store.unsettled_past(work.now)]
        flagged = await store.receipts(
            payment_receipts, dispositions=FLAGGED
        ) + await self.dead_lettered_answers(store, self.payment_answers)
        answered = await store.instructions_by_id(
            sorted({receipt.subject_id for receipt in flagged})
        )
        for receipt in flagged:
            findings.append(Finding.flagged(receipt, answered.get(receipt.subject_id)))
        findings += [
            Finding.mismatch(settled)
            for settled in await store.settled_instructions()
            if settled.settled_amount is not None and settled.settled_amount != settled.amount
        ]
        findings += [Finding.refund_outstanding(due) for due in await store.refunds(open_only=True)]
        held = await store.receipts(
            refund_receipts, dispositions=(Disposition.UNKNOWN, Disposition.MISMATCH)
        ) + await self.dead_lettered_answers(store, self.refund_answers)
        for answer in held:
            findings.append(Finding.refund_flagged(answer, await store.refund(answer.subject_id)))
        totals = [
            RefundTotal(
                currency=currency,
                requested=Money(amount_minor=requested, currency=currency),
                received=Money(amount_minor=received, currency=currency),
                due=Money(amount_minor=requested - received, currency=currency),
            )
            for currency, requested, received in await store.refund_totals()
        ]
        return Reconciliation.of(work.now, findings, totals)
