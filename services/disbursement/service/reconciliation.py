"""What officers read about payments: an application's history, and reconciliation.

Reconciliation sets the instructions against what finance answered: instructions past
their deadline, settlements of unknown instructions, duplicates, conflicts and settled
amounts that differ from the instruction. An unknown settlement that came on Kafka was
dead-lettered (the consumer refuses it), so it is read from the service's dead letters;
one posted to the webhook was answered 404 and recorded as a receipt.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from services.disbursement.domain import Disposition
from services.disbursement.persistence import DeadLetter, DisbursementStore, Receipt
from services.disbursement.schemas import Finding, PaymentHistory, Reconciliation
from services.disbursement.service.base import DisbursementBase
from shared.contracts.envelope import Envelope
from shared.contracts.finance import PaymentFailed, PaymentSettled
from shared.contracts.topics import PAYMENT_FAILED, PAYMENT_SETTLED
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
        return PaymentHistory.of(
            application_id,
            award,
            instructions,
            receipts,
            await store.application_transactions(application_id),
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
        return Reconciliation.of(work.now, findings)

    async def _dead_lettered(self, store: DisbursementStore) -> list[Receipt]:
        """Finance's answers on Kafka about instructions that do not exist (dead-lettered)."""
        prefix = self.settings.topic_prefix
        topics = {topic.qualified(prefix): topic for topic in (PAYMENT_SETTLED, PAYMENT_FAILED)}
        letters = await store.dead_letters(list(topics))
        notices = [(letter, _notice(letter, topics[letter.topic].payload)) for letter in letters]
        known = await store.instructions_by_id(
            sorted({notice.instruction_id for _letter, notice in notices if notice is not None})
        )
        return [
            Receipt.of(
                notice, Disposition.UNKNOWN, channel="kafka", received_at=letter.dead_lettered_at
            )
            for letter, notice in notices
            if notice is not None and notice.instruction_id not in known
        ]


def _notice(letter: DeadLetter, payload: type[Any]) -> PaymentSettled | PaymentFailed | None:
    """The notice in a dead letter; None when it was dead-lettered for not being one."""
    try:
        notice = Envelope[payload].model_validate_json(letter.body).payload  # type: ignore[valid-type]
    except ValidationError:
        return None
    assert isinstance(notice, PaymentSettled | PaymentFailed)
    return notice
