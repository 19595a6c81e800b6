"""The public finance contract: instructions to finance systems and their answers."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from shared.contracts.base import Contract
from shared.contracts.money import Money


class PaymentInstructed(Contract):
    instruction_id: str = Field(description="The idempotency key '<application>:<tranche>'.")
    application_id: str
    payee_reference: str
    amount: Money = Field(description="What the payee receives, in its payment currency.")
    award_amount: Money = Field(description="The same payment in the program currency.")
    fx_rate: str | None = Field(default=None, description="Decimal rate used, as text.")
    value_date: date
    memo: str


class PaymentSettled(Contract):
    instruction_id: str
    finance_reference: str
    amount: Money


class PaymentFailed(Contract):
    instruction_id: str
    finance_reference: str | None = None
    reason: str
