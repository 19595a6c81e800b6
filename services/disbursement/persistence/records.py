"""What the store reads and writes besides the domain's own records, and row mapping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.disbursement.domain import (
    Account,
    Balances,
    Disposition,
    Instruction,
    InstructionStatus,
    Refund,
    RefundStatus,
)
from shared.contracts.finance import (
    PaymentFailed,
    PaymentSettled,
    RefundCollected,
    RefundCollectionFailed,
)
from shared.contracts.money import Money


@dataclass(frozen=True)
class AppliedKey:
    """The answer the ledger gave the first command that applied an idempotency key."""

    command_id: str
    answer_topic: str
    answer_payload: str


FinanceNotice = PaymentSettled | PaymentFailed | RefundCollected | RefundCollectionFailed


def subject_of(notice: FinanceNotice) -> str:
    """What finance answers about: the payment instruction's id, or the refund's."""
    if isinstance(notice, PaymentSettled | PaymentFailed):
        return notice.instruction_id
    return notice.refund_id


@dataclass(frozen=True)
class FinanceReceipt:
    """One answer from finance about what it was asked (a payment instruction or a refund),
    and what it did to the ledger."""

    subject_id: str
    outcome: str
    disposition: Disposition
    finance_reference: str | None
    amount: Money | None
    reason: str | None
    channel: str
    received_at: datetime

    @classmethod
    def of(
        cls,
        notice: FinanceNotice,
        disposition: Disposition,
        *,
        channel: str,
        received_at: datetime,
    ) -> FinanceReceipt:
        return cls(
            subject_id=subject_of(notice),
            outcome=_outcome(notice),
            disposition=disposition,
            finance_reference=notice.finance_reference,
            amount=notice.amount if isinstance(notice, PaymentSettled | RefundCollected) else None,
            reason=notice.reason
            if isinstance(notice, PaymentFailed | RefundCollectionFailed)
            else None,
            channel=channel,
            received_at=received_at,
        )


def _outcome(notice: FinanceNotice) -> str:
    if isinstance(notice, PaymentSettled):
        return "settled"
    if isinstance(notice, RefundCollected):
        return "received"
    return "failed"


@dataclass(frozen=True)
class Delivery:
    """A delivery to the finance webhook and the answer it got."""

    delivery_id: str
    status_code: int
    answer: Any


@dataclass(frozen=True)
class LedgerTransaction:
    id: str
    kind: str
    reference: str | None
    created_at: datetime
    amounts: dict[str, int]


@dataclass(frozen=True)
class BudgetChangeRow:
    at: datetime
    kind: str
    reason: str | None
    amount_minor: int


@dataclass(frozen=True)
class Rate:
    base_currency: str
    quote_currency: str
    rate: str
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class DeadLetter:
    """A message the consumer gave up on, as it was sent."""

    topic: str
    body: bytes
    dead_lettered_at: datetime


def money_of(amount_minor: int | None, currency: str | None) -> Money | None:
    if amount_minor is None or currency is None:
        return None
    return Money(amount_minor=int(amount_minor), currency=currency)


def instruction_of(row: Any) -> Instruction:
    return Instruction(
        instruction_id=row.instruction_id,
        application_id=row.application_id,
        program_code=row.program_code,
        cycle=row.cycle,
        tranche=row.tranche,
        command_id=row.command_id,
        correlation_id=row.correlation_id,
        payee_reference=row.payee_reference,
        amount=Money(amount_minor=int(row.amount_minor), currency=row.currency),
        award_amount=Money(amount_minor=int(row.award_amount_minor), currency=row.award_currency),
        fx_rate=row.fx_rate,
        value_date=row.value_date,
        memo=row.memo,
        status=InstructionStatus(row.status),
        attempts=row.attempts,
        sends=row.sends,
        due_at=row.due_at,
        last_error=row.last_error,
        finance_reference=row.finance_reference,
        settled_amount=money_of(row.settled_amount_minor, row.settled_currency),
        settled_at=row.settled_at,
        created_at=row.created_at,
    )


def changing_columns(instruction: Instruction) -> dict[str, Any]:
    """The columns of an instruction that change after it is first written."""
    settled = instruction.settled_amount
    return {
        "command_id": instruction.command_id,
        "correlation_id": instruction.correlation_id,
        "status": instruction.status.value,
        "attempts": instruction.attempts,
        "sends": instruction.sends,
        "due_at": instruction.due_at,
        "last_error": instruction.last_error,
        "finance_reference": instruction.finance_reference,
        "settled_amount_minor": settled.amount_minor if settled else None,
        "settled_currency": settled.currency if settled else None,
        "settled_at": instruction.settled_at,
    }


def balances_of(currency: str, rows: Sequence[Any]) -> Balances:
    return Balances(currency, {Account(row.account): int(row.total) for row in rows})


def refund_of(row: Any) -> Refund:
    return Refund(
        refund_id=row.refund_id,
        application_id=row.application_id,
        program_code=row.program_code,
        cycle=row.cycle,
        payer_reference=row.payer_reference,
        amount=Money(amount_minor=int(row.amount_minor), currency=row.currency),
        received=Money(amount_minor=int(row.received_minor), currency=row.currency),
        reason=row.reason,
        status=RefundStatus(row.status),
        sends=row.sends,
        due_at=row.due_at,
        last_error=row.last_error,
        correlation_id=row.correlation_id,
        created_at=row.created_at,
        received_at=row.received_at,
    )


def refund_columns(refund: Refund) -> dict[str, Any]:
    """The columns of a refund that change after it is first written."""
    return {
        "received_minor": refund.received.amount_minor,
        "status": refund.status.value,
        "sends": refund.sends,
        "due_at": refund.due_at,
        "last_error": refund.last_error,
        "received_at": refund.received_at,
    }
