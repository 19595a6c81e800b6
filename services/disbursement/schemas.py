"""What the officer API and the finance webhook read and answer, and how views are built."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import date, datetime
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from services.disbursement.domain import (
    Account,
    Award,
    Balances,
    Budget,
    Disposition,
    Instruction,
    InstructionStatus,
    Refund,
)
from services.disbursement.persistence import BudgetChangeRow, FinanceReceipt, LedgerTransaction
from shared.contracts.finance import (
    PaymentFailed,
    PaymentSettled,
    RefundCollected,
    RefundCollectionFailed,
)
from shared.contracts.money import (
    MINOR_UNIT_EXPONENT,
    CurrencyCode,
    ExchangeRate,
    Money,
    Payment,
    parse_rate,
)
from shared.views import View, copy_of


def _known_currency(code: str) -> str:
    if code not in MINOR_UNIT_EXPONENT:
        raise ValueError(f"unknown currency code {code!r}: use an ISO-4217 code")
    return code


KnownCurrency = Annotated[CurrencyCode, AfterValidator(_known_currency)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _View(View):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetUpdate(_Schema):
    amount: Payment = Field(description="The program's whole budget for the cycle.")
    reason: str = Field(
        min_length=1,
        max_length=500,
        description="Why the budget changes; kept with the ledger entry that changes it.",
    )


class BudgetChange(_Schema):
    at: datetime
    kind: Literal["opening_balance", "budget"] = Field(
        description="opening_balance: the catalog's annual budget when the cycle opened; "
        "budget: an officer's change."
    )
    amount: Money = Field(description="What the change added (negative: took away).")
    reason: str | None


class RateUpdate(_Schema):
    rate: ExchangeRate = Field(
        description="Units of the quote currency for one unit of the base, as decimal text."
    )

    @field_validator("rate")
    @classmethod
    def _positive(cls, value: str) -> str:
        parse_rate(value)
        return value


class PayeeUpdate(_Schema):
    currency: KnownCurrency = Field(description="The currency the payee is paid in.")


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
    changes: list[BudgetChange] = Field(
        default_factory=list, description="How the budget came to be, oldest first."
    )

    @classmethod
    def of(
        cls, budget: Budget, settled: list[Instruction], changes: list[BudgetChangeRow]
    ) -> BudgetReport:
        """``budget``'s balances, and what the rates did to its ``settled`` payments."""
        foreign = [instruction for instruction in settled if instruction.fx_rate is not None]
        difference = Money.zero(budget.currency)
        for instruction in foreign:
            difference = difference + (instruction.fx_difference or Money.zero(budget.currency))
        balances = budget.balances
        return cls(
            program_code=budget.program_code,
            cycle=budget.cycle,
            currency=budget.currency,
            budget=Money(amount_minor=balances.budget, currency=budget.currency),
            available=balances.money(Account.AVAILABLE),
            reserved=balances.money(Account.RESERVED),
            in_payment=balances.money(Account.IN_PAYMENT),
            disbursed=balances.money(Account.DISBURSED),
            refund_due=balances.money(Account.REFUND_DUE),
            fx=FxSummary(payments=len(foreign), fx_difference=difference),
            changes=[
                BudgetChange(
                    at=change.at,
                    kind="opening_balance" if change.kind == "opening_balance" else "budget",
                    amount=Money(amount_minor=change.amount_minor, currency=budget.currency),
                    reason=change.reason,
                )
                for change in changes
            ],
        )


class ReceiptView(_View):
    """One answer finance gave, and what it did to the ledger."""

    outcome: str = Field(description="settled or failed (a payment), received or failed (a refund)")
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

    @classmethod
    def of(cls, instruction: Instruction, receipts: list[FinanceReceipt]) -> PaymentView:
        return copy_of(
            cls,
            instruction,
            receipts=[
                ReceiptView.of(receipt)
                for receipt in receipts
                if receipt.subject_id == instruction.instruction_id
            ],
        )


class RefundView(_Schema):
    refund_id: str
    status: str = Field(description="requested, overdue (escalated; still due) or received")
    payer_reference: str
    amount: Money = Field(description="The refund asked of the member.")
    received: Money = Field(description="What finance received of it so far.")
    outstanding: Money = Field(description="What is still due of it.")
    reason: str
    sends: int = Field(description="The request and its reminders.")
    due_at: datetime = Field(description="When the next reminder (or the escalation) is due.")
    last_error: str | None
    received_at: datetime | None
    receipts: list[ReceiptView]

    @classmethod
    def of(cls, refund: Refund, receipts: list[FinanceReceipt]) -> RefundView:
        return cls(
            refund_id=refund.refund_id,
            status=refund.status.value,
            payer_reference=refund.payer_reference,
            amount=refund.amount,
            received=refund.received,
            outstanding=refund.outstanding,
            reason=refund.reason,
            sends=refund.sends,
            due_at=refund.due_at,
            last_error=refund.last_error,
            received_at=refund.received_at,
            receipts=[
                ReceiptView.of(receipt)
                for receipt in receipts
                if receipt.subject_id == refund.refund_id
            ],
        )


class LedgerLine(_View):
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
    refunds: list[RefundView] = Field(description="Refunds asked of finance to collect.")
    ledger: list[LedgerLine]

    @classmethod
    def of(
        cls,
        application_id: str,
        award: Award | None,
        instructions: list[Instruction],
        receipts: list[FinanceReceipt],
        transactions: list[LedgerTransaction],
        refunds: tuple[list[Refund], list[FinanceReceipt]] = ([], []),
    ) -> PaymentHistory:
        if award is None:  # paid, and the award since forgotten: nothing awarded any more
            first = instructions[0]
            currency = first.award_amount.currency
            award = Award(
                application_id,
                first.program_code,
                first.cycle,
                Money.zero(currency),
                Balances(currency),
            )
        balances = award.balances
        return cls(
            application_id=application_id,
            program_code=award.program_code,
            cycle=award.cycle,
            awarded=award.awarded,
            reserved=balances.money(Account.RESERVED),
            in_payment=balances.money(Account.IN_PAYMENT),
            disbursed=balances.money(Account.DISBURSED),
            refund_due=balances.money(Account.REFUND_DUE),
            payments=[PaymentView.of(instruction, receipts) for instruction in instructions],
            refunds=[RefundView.of(refund, refunds[1]) for refund in refunds[0]],
            ledger=[LedgerLine.of(transaction) for transaction in transactions],
        )


FindingKind = Literal[
    "unsettled_past_deadline",
    "duplicate",
    "unknown_settlement",
    "amount_mismatch",
    "conflict",
    "refund_outstanding",
    "refund_held",
    "unknown_refund",
]


class Finding(_Schema):
    kind: FindingKind
    instruction_id: str = Field(description="The instruction's id; a refund's id for refund_*.")
    application_id: str | None = None
    status: str | None = None
    attempts: int | None = None
    due_at: datetime | None = None
    instructed: Money | None = None
    settled: Money | None = None
    finance_reference: str | None = None
    detail: str

    @classmethod
    def unsettled(cls, instruction: Instruction) -> Finding:
        escalated = instruction.status is InstructionStatus.ESCALATED
        return cls(
            kind="unsettled_past_deadline",
            instruction_id=instruction.instruction_id,
            application_id=instruction.application_id,
            status=instruction.status.value,
            attempts=instruction.attempts,
            due_at=instruction.due_at,
            instructed=instruction.amount,
            detail=f"sent {instruction.sends} time(s), no settlement; "
            + ("escalated" if escalated else "will be re-sent"),
        )

    @classmethod
    def flagged(cls, receipt: FinanceReceipt, answered: Instruction | None) -> Finding:
        """A finance answer that did not simply apply: unknown, duplicate or conflicting."""
        kind: FindingKind
        if receipt.disposition is Disposition.UNKNOWN:
            kind = "unknown_settlement"
            detail = f"finance answered ({receipt.outcome}) an instruction never sent"
        elif receipt.disposition is Disposition.DUPLICATE:
            kind = "duplicate"
            same = answered is not None and answered.finance_reference == receipt.finance_reference
            detail = (
                "the same settlement again: counted once"
                if same
                else "a second settlement with another reference: not paid twice, "
                "ask finance to recover it"
            )
        elif receipt.disposition is Disposition.MISMATCH:
            kind = "amount_mismatch"
            instructed = answered.amount if answered else None
            detail = (
                f"finance settled {receipt.amount}, the instruction is for {instructed}: "
                "not applied, held for a program officer"
            )
        else:
            kind = "conflict"
            detail = "settled after finance had failed it and the reservation was released"
        return cls(
            kind=kind,
            instruction_id=receipt.subject_id,
            application_id=answered.application_id if answered else None,
            status=answered.status.value if answered else None,
            instructed=answered.amount if answered else None,
            settled=receipt.amount,
            finance_reference=receipt.finance_reference,
            detail=f"{detail} (via {receipt.channel})",
        )

    @classmethod
    def mismatch(cls, settled: Instruction) -> Finding:
        return cls(
            kind="amount_mismatch",
            instruction_id=settled.instruction_id,
            application_id=settled.application_id,
            status=settled.status.value,
            instructed=settled.amount,
            settled=settled.settled_amount,
            finance_reference=settled.finance_reference,
            detail=f"instructed {settled.amount}, finance settled {settled.settled_amount}",
        )

    @classmethod
    def refund_outstanding(cls, refund: Refund) -> Finding:
        """A refund not received in full: asked (instructed) against received (settled)."""
        reminded = f"asked {refund.sends} time(s)"
        state = (
            "escalated to a program officer"
            if refund.status.value == "overdue"
            else "will be asked again"
        )
        last = f"; last error: {refund.last_error}" if refund.last_error else ""
        return cls(
            kind="refund_outstanding",
            instruction_id=refund.refund_id,
            application_id=refund.application_id,
            status=refund.status.value,
            attempts=refund.sends,
            due_at=refund.due_at,
            instructed=refund.amount,
            settled=refund.received,
            detail=f"{refund.outstanding} still due; {reminded}, {state}{last}",
        )

    @classmethod
    def refund_flagged(cls, receipt: FinanceReceipt, refund: Refund | None) -> Finding:
        """Money received for a refund that was not applied: unknown, or held."""
        if receipt.disposition is Disposition.UNKNOWN:
            kind: FindingKind = "unknown_refund"
            detail = f"finance answered ({receipt.outcome}) a refund never requested"
        else:
            kind = "refund_held"
            outstanding = refund.outstanding if refund else None
            detail = (
                f"finance received {receipt.amount} with {outstanding} outstanding: "
                "not applied, held for a program officer"
            )
        return cls(
            kind=kind,
            instruction_id=receipt.subject_id,
            application_id=refund.application_id if refund else None,
            status=refund.status.value if refund else None,
            instructed=refund.amount if refund else None,
            settled=receipt.amount,
            finance_reference=receipt.finance_reference,
            detail=f"{detail} (via {receipt.channel})",
        )


class RefundTotal(_Schema):
    """Refunds of one currency: what was asked back, received, and is still due."""

    currency: str
    requested: Money
    received: Money
    due: Money


RECONCILIATION_COLUMNS: Final = (
    "kind",
    "instruction_id",
    "application_id",
    "status",
    "attempts",
    "due_at",
    "instructed_amount",
    "instructed_currency",
    "settled_amount",
    "settled_currency",
    "finance_reference",
    "detail",
)


def _decimal(amount: Money | None) -> str:
    """``12345 USD`` minor units as ``123.45``."""
    if amount is None:
        return ""
    exponent = MINOR_UNIT_EXPONENT[amount.currency]
    whole, fraction = divmod(abs(amount.amount_minor), 10**exponent)
    sign = "-" if amount.amount_minor < 0 else ""
    return f"{sign}{whole}" if exponent == 0 else f"{sign}{whole}.{fraction:0{exponent}d}"


class Reconciliation(_Schema):
    generated_at: datetime
    counts: dict[str, int]
    findings: list[Finding]
    refunds: list[RefundTotal] = Field(
        default_factory=list,
        description="Refunds asked of finance against what it received, per currency.",
    )

    @classmethod
    def of(
        cls,
        generated_at: datetime,
        findings: list[Finding],
        refunds: list[RefundTotal] | None = None,
    ) -> Reconciliation:
        counts = Counter(finding.kind for finding in findings)
        return cls(
            generated_at=generated_at,
            counts=dict(counts),
            findings=findings,
            refunds=refunds or [],
        )

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(RECONCILIATION_COLUMNS)
        for finding in self.findings:
            writer.writerow(
                [
                    finding.kind,
                    finding.instruction_id,
                    finding.application_id or "",
                    finding.status or "",
                    "" if finding.attempts is None else finding.attempts,
                    finding.due_at.isoformat() if finding.due_at else "",
                    _decimal(finding.instructed),
                    finding.instructed.currency if finding.instructed else "",
                    _decimal(finding.settled),
                    finding.settled.currency if finding.settled else "",
                    finding.finance_reference or "",
                    finding.detail,
                ]
            )
        return out.getvalue()


class RateView(_View):
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


class ReceivedRefundNotice(RefundCollected):
    """Money received for a refund, posted to the webhook."""

    outcome: Literal["received"]


class FailedRefundNotice(RefundCollectionFailed):
    """A refund finance could not collect, posted to the webhook."""

    outcome: Literal["failed"]


RefundNotice = Annotated[ReceivedRefundNotice | FailedRefundNotice, Field(discriminator="outcome")]


class RefundWebhookAnswer(_Schema):
    refund_id: str
    disposition: str = Field(description="applied, duplicate, retrying, failed, ignored")
