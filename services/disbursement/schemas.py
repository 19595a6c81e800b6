"""What the officer API and the finance webhook read and answer."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.disbursement.domain import parse_rate
from shared.contracts.finance import PaymentFailed, PaymentSettled
from shared.contracts.money import MINOR_UNIT_EXPONENT, CurrencyCode, Money


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetUpdate(_Schema):
    amount: Money = Field(description="The program's whole budget for the cycle.")

    @field_validator("amount")
    @classmethod
    def _not_negative(cls, value: Money) -> Money:
        if value.amount_minor < 0:
            raise ValueError("a budget cannot be negative")
        return value


class RateUpdate(_Schema):
    rate: str = Field(
        description="Units of the quote currency for one unit of the base, as decimal text.",
        examples=["129.45"],
    )

    @field_validator("rate")
    @classmethod
    def _positive_decimal(cls, value: str) -> str:
        parse_rate(value)
        return value.strip()


class PayeeUpdate(_Schema):
    currency: CurrencyCode = Field(description="The currency the payee is paid in.")

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in MINOR_UNIT_EXPONENT:
            raise ValueError(f"unknown currency code {value!r}: use an ISO-4217 code")
        return value


class FxSummary(_Schema):
    payments: int = Field(description="Settled payments made in another currency.")
    fx_difference: Money = Field(
        description="What finance paid, converted back at the recorded rates, less the awards."
    )


class BudgetReport(_Schema):
    program_code: str
    cycle: str
    currency: str
    budget: Money
    available: Money
    reserved: Money
    in_payment: Money
    disbursed: Money
    refund_due: Money
    fx: FxSummary


class ReceiptView(_Schema):
    outcome: str
    disposition: str
    finance_reference: str | None
    amount: Money | None
    reason: str | None
    channel: str
    received_at: datetime


class PaymentView(_Schema):
    instruction_id: str
    tranche: int
    status: str
    attempts: int
    sends: int
    payee_reference: str
    amount: Money = Field(description="What the payee is paid, in its payment currency.")
    award_amount: Money = Field(description="The same payment in the program currency.")
    fx_rate: str | None
    fx_difference: Money | None
    value_date: date
    due_at: datetime
    last_error: str | None
    finance_reference: str | None
    settled_amount: Money | None
    settled_at: datetime | None
    receipts: list[ReceiptView]


class LedgerLine(_Schema):
    kind: str
    reference: str | None
    created_at: datetime
    amounts: dict[str, int] = Field(description="Minor units moved per account.")


class PaymentHistory(_Schema):
    application_id: str
    program_code: str
    cycle: str
    awarded: Money
    reserved: Money
    in_payment: Money
    disbursed: Money
    refund_due: Money
    payments: list[PaymentView]
    ledger: list[LedgerLine]


FindingKind = Literal[
    "unsettled_past_deadline", "duplicate", "unknown_settlement", "amount_mismatch", "conflict"
]


class Finding(_Schema):
    kind: FindingKind
    instruction_id: str
    application_id: str | None = None
    status: str | None = None
    attempts: int | None = None
    due_at: datetime | None = None
    instructed: Money | None = None
    settled: Money | None = None
    finance_reference: str | None = None
    detail: str


class Reconciliation(_Schema):
    generated_at: datetime
    counts: dict[str, int]
    findings: list[Finding]


class RateView(_Schema):
    base_currency: str
    quote_currency: str
    rate: str
    updated_at: datetime
    updated_by: str


class PayeeView(_Schema):
    payee_reference: str
    currency: str


class SettledNotice(PaymentSettled):
    """A settlement posted to the webhook."""

    outcome: Literal["settled"]


class FailedNotice(PaymentFailed):
    """A refused payment posted to the webhook."""

    outcome: Literal["failed"]


FinanceNotice = Annotated[SettledNotice | FailedNotice, Field(discriminator="outcome")]


class WebhookAnswer(_Schema):
    instruction_id: str
    disposition: str = Field(description="applied, duplicate, retrying, failed, ignored, ...")
