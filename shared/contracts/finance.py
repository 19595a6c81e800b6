"""The public finance contract: instructions to finance systems and their answers."""

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
