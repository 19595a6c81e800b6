"""The public finance contract: what disbursement asks of finance systems (pay an
instruction, collect a refund from a member) and their answers (settled or failed, refund
received or not collected). Ids are idempotency keys: the same request again, as a retry
or a reminder, is the same request."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from shared.contracts.base import ApplicationId, Contract, Reason, Reference
from shared.contracts.money import ExchangeRate, Money, Payment


class PaymentInstructed(Contract):
    instruction_id: Reference = Field(description="The idempotency key '<application>:<tranche>'.")
    application_id: ApplicationId
    payee_reference: Reference
    amount: Money = Field(description="What the payee receives, in its payment currency.")
    award_amount: Money = Field(description="The same payment in the program currency.")
    fx_rate: ExchangeRate | None = Field(default=None, description="Decimal rate used, as text.")
    value_date: date
    memo: Reason


class PaymentSettled(Contract):
    instruction_id: Reference
    finance_reference: Reference
    amount: Payment = Field(description="What finance paid: the instruction's amount.")


class PaymentFailed(Contract):
    instruction_id: Reference
    finance_reference: Reference | None = None
    reason: Reason


class RefundCollectionRequested(Contract):
    """Disbursement asks finance to collect a refund from the member; sent again as a
    reminder while it is not received in full (the refund id is the idempotency key)."""

    refund_id: Reference = Field(
        description="The idempotency key of the refund, '<application>:refund:<why>'."
    )
    application_id: ApplicationId
    payer_reference: Reference = Field(description="Who pays back: the payee of the award.")
    amount: Payment = Field(description="The whole refund asked, in the program currency.")
    outstanding: Payment = Field(description="What is still to be received of it.")
    reminder: int = Field(ge=0, le=1000, description="0 for the request, then 1, 2, ...")
    reason: Reason


class RefundCollected(Contract):
    """Finance received money for a refund: the whole outstanding amount or a part of it.
    Each receipt has its own finance reference; the same reference again counts once."""

    refund_id: Reference
    finance_reference: Reference
    amount: Payment = Field(description="What finance received, in the refund's currency.")


class RefundCollectionFailed(Contract):
    """Finance could not collect the refund (the member's bank refused, no such account)."""

    refund_id: Reference
    finance_reference: Reference | None = None
    reason: Reason
