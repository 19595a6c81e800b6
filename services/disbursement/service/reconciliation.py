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

from typing import Any

from pydantic import ValidationError

from services.disbursement.domain import Disposition
from services.disbursement.persistence import (
    DeadLetter,
    DisbursementStore,
    Receipt,
    RefundReceipt,
)
from services.disbursement.schemas import Finding, PaymentHistory, Reconciliation, RefundTotal
from services.disbursement.service.base import DisbursementBase
from shared.contracts.envelope import Envelope
from shared.contracts.finance import (
    PaymentFailed,
    PaymentSettled,
    RefundCollected,
    RefundCollectionFailed,
)
from shared.contracts.money import Money
from shared.contracts.topics import (
    FINANCE_REFUND_FAILED,
    FINANCE_REFUND_RECEIVED,
    PAYMENT_FAILED,
    PAYMENT_SETTLED,
)
from shared.errors import NotFoundError
from shared.service import Work

FLAGGED = (Disposition.DUPLICATE, Disposition.UNKNOWN, Disposition.CONFLICT, Disposition.MISMATCH)


class PaymentReports(DisbursementBase):
    async def payment_history(self, work: Work, application_id: str) -> PaymentHistory:
        store = DisbursementStore(work.session)
        award = await store.award(application_id)
        instructions = await store.application_instructions(application_id)
        if award is None and not instructions:
            raise NotFoundError(f"no award or payment for {application_id}")
        receipts = await store.receipts(
            instruction_ids=[instruction.instruction_id for instruction in instructions]
        )
        refunds = await store.refunds(application_id=application_id)
        refund_receipts = await store.refund_receipts(
            refund_ids=[refund.refund_id for refund in refunds]
        )
        return PaymentHistory.of(
            application_id,
            award,
            instructions,
            receipts,
            await store.application_transactions(application_id),
            (refunds, refund_receipts),
        )

    async def reconciliation(self, work: Work) -> Reconciliation:
        """Instructions against what finance answered: what an officer must look at."""
        store = DisbursementStore(work.session)
        findings = [Finding.unsettled(late) for late in await store.unsettled_past(work.now)]
        flagged = await store.receipts(dispositions=FLAGGED) + await self._dead_lettered(store)
        answered = await store.instructions_by_id(
            sorted({receipt.instruction_id for receipt in flagged})
        )
        for receipt in flagged:
            findings.append(Finding.flagged(receipt, answered.get(receipt.instruction_id)))
        findings += [
            Finding.mismatch(settled)
            for settled in await store.settled_instructions()
            if settled.settled_amount is not None and settled.settled_amount != settled.amount
        ]
        findings += [Finding.refund_outstanding(due) for due in await store.refunds(open_only=True)]
        held = await store.refund_receipts(
            dispositions=(Disposition.UNKNOWN, Disposition.MISMATCH)
        ) + await self._dead_lettered_refunds(store)
        for answer in held:
            findings.append(Finding.refund_flagged(answer, await store.refund(answer.refund_id)))
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

    async def _dead_lettered(self, store: DisbursementStore) -> list[Receipt]:
        """Finance's answers on Kafka about instructions that do not exist (dead-lettered)."""
        prefix = self.settings.topic_prefix
        topics = {topic.qualified(prefix): topic for topic in (PAYMENT_SETTLED, PAYMENT_FAILED)}
        letters = await store.dead_letters(list(topics))
        notices = [
            (letter, notice)
            for letter in letters
            if isinstance(
                notice := _notice(letter, topics[letter.topic].payload),
                PaymentSettled | PaymentFailed,
            )
        ]
        known = await store.instructions_by_id(
            sorted({notice.instruction_id for _letter, notice in notices})
        )
        return [
            Receipt.of(
                notice, Disposition.UNKNOWN, channel="kafka", received_at=letter.dead_lettered_at
            )
            for letter, notice in notices
            if notice.instruction_id not in known
        ]

    async def _dead_lettered_refunds(self, store: DisbursementStore) -> list[RefundReceipt]:
        """Finance's answers on Kafka about refunds never requested (dead-lettered)."""
        prefix = self.settings.topic_prefix
        topics = {
            topic.qualified(prefix): topic
            for topic in (FINANCE_REFUND_RECEIVED, FINANCE_REFUND_FAILED)
        }
        found = []
        for letter in await store.dead_letters(list(topics)):
            notice = _notice(letter, topics[letter.topic].payload)
            if not isinstance(notice, RefundCollected | RefundCollectionFailed):
                continue
            if await store.refund(notice.refund_id) is None:
                found.append(
                    RefundReceipt.of(
                        notice,
                        Disposition.UNKNOWN,
                        channel="kafka",
                        received_at=letter.dead_lettered_at,
                    )
                )
        return found


Notice = PaymentSettled | PaymentFailed | RefundCollected | RefundCollectionFailed


def _notice(letter: DeadLetter, payload: type[Any]) -> Notice | None:
    """The notice in a dead letter; None when it was dead-lettered for not being one."""
    try:
        notice = Envelope[payload].model_validate_json(letter.body).payload  # type: ignore[valid-type]
    except ValidationError:
        return None
    assert isinstance(notice, Notice)
    return notice
