"""The public finance contract: instructions to finance systems and their answers."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from shared.contracts.intake import Contract
from shared.contracts.money import Money


class PaymentInstructed(Contract):
    instruction_id: str = Field(description="The idempotency key '<application>:<tranche>'.")
    application_id: str
    payee_reference: str
    amount: Money
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
