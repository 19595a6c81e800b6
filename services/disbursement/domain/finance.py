"""The disbursement rules about finance: payment instructions and their retries, refunds to
collect and their reminders, the exchange-rate difference of a payment, and finance's signed
webhook. No I/O.

A ``Disposition`` says what a notice from finance (a settlement, a failure, money received
for a refund) did to the ledger, the postings of ``ledger``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Final

from services.disbursement.domain.ledger import (
    Account,
    Award,
    Posting,
    award_account,
    program_account,
    transfer,
)
from shared.contracts.money import Money, parse_rate

WEBHOOK_TOLERANCE: Final = timedelta(minutes=5)


class InstructionStatus(StrEnum):
    PENDING = "pending"  # sent to finance (or about to be re-sent), no final answer yet
    ESCALATED = "escalated"  # never answered after the last attempt: may or may not be paid
    FAILED = "failed"  # finance refused it every time: the money is reserved again
    SETTLED = "settled"


class Disposition(StrEnum):
    """What a settlement or failure notice from finance did to the ledger."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # a further settlement of a settled instruction: never pays twice
    UNKNOWN = "unknown"  # no such instruction
    RETRYING = "retrying"  # finance failed it; it will be sent again
    FAILED = "failed"  # finance failed it and no attempt is left
    IGNORED = "ignored"  # a failure for an instruction that is already settled or failed
    CONFLICT = "conflict"  # settled after a final failure, and the reservation is gone
    MISMATCH = "mismatch"  # settled for another amount or currency: not applied, held


# Payment instructions and the retry loop ----------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One payment instruction to finance; its id is the idempotency key ``<app>:<tranche>``.

    A *round* is the sends made for one PayTranche command: the first send, then one more
    after each failure or unanswered deadline, up to the maximum number of attempts.
    ``attempts`` counts the sends of the current round, ``sends`` every send ever made.
    """

    instruction_id: str
    application_id: str
    program_code: str
    cycle: str
    tranche: int
    command_id: str  # the PayTranche whose round this is: its answers are filed under it
    correlation_id: str
    payee_reference: str
    amount: Money  # in the payee's currency
    award_amount: Money  # in the program currency
    fx_rate: str | None
    value_date: date
    memo: str
    status: InstructionStatus
    attempts: int
    sends: int
    due_at: datetime
    last_error: str | None
    finance_reference: str | None
    settled_amount: Money | None
    settled_at: datetime | None
    created_at: datetime

    @property
    def fx_difference(self) -> Money | None:
        """For a settled payment in another currency: what the rate change cost or saved."""
        settled = self.settled_amount
        if self.fx_rate is None or settled is None or settled.currency != self.amount.currency:
            return None
        return fx_difference(self.award_amount, settled, self.fx_rate)

    def out_of_attempts(self, max_attempts: int) -> bool:
        return self.attempts >= max_attempts

    def sent_again(self, now: datetime, deadline: timedelta) -> Instruction:
        """The next attempt of the round, sent now and due ``deadline`` from now."""
        return replace(
            self, attempts=self.attempts + 1, sends=self.sends + 1, due_at=now + deadline
        )

    def new_round(
        self, command_id: str, correlation_id: str, now: datetime, deadline: timedelta
    ) -> Instruction:
        """A new PayTranche for a payment that failed for good: the same instruction again."""
        return replace(
            self,
            command_id=command_id,
            correlation_id=correlation_id,
            status=InstructionStatus.PENDING,
            attempts=1,
            sends=self.sends + 1,
            due_at=now + deadline,
            last_error=None,
        )


def failure_disposition(instruction: Instruction, max_attempts: int) -> Disposition:
    """What a failure notice from finance does to an instruction."""
    if instruction.status in (InstructionStatus.SETTLED, InstructionStatus.FAILED):
        return Disposition.IGNORED
    if instruction.status is InstructionStatus.PENDING and not instruction.out_of_attempts(
        max_attempts
    ):
        return Disposition.RETRYING
    return Disposition.FAILED


def settlement_conflicts(instruction: Instruction, award: Award | None) -> bool:
    """A settlement after a final failure whose reservation is no longer there to pay it."""
    if instruction.status is not InstructionStatus.FAILED:
        return False
    reserved = award.balances[Account.RESERVED] if award is not None else 0
    return reserved < instruction.award_amount.amount_minor


def settlement_posting(
    application_id: str, amount_minor: int, status: InstructionStatus
) -> Posting | None:
    """The movement a settlement makes, or None when it must not move money."""
    if status is InstructionStatus.SETTLED:
        return None
    source = Account.RESERVED if status is InstructionStatus.FAILED else Account.IN_PAYMENT
    return transfer(
        "settle",
        amount_minor,
        award_account(source, application_id),
        award_account(Account.DISBURSED, application_id),
    )


def failure_posting(application_id: str, amount_minor: int) -> Posting:
    """A payment that finance finally refused goes back into the reservation."""
    return transfer(
        "payment_failed",
        amount_minor,
        award_account(Account.IN_PAYMENT, application_id),
        award_account(Account.RESERVED, application_id),
    )


# Refunds to collect and the reminders ---------------------------------------------------


class RefundStatus(StrEnum):
    REQUESTED = "requested"  # asked of finance (and reminded), not received in full yet
    OVERDUE = "overdue"  # still due after the last reminder: escalated to a program officer
    RECEIVED = "received"  # received in full


@dataclass(frozen=True)
class Refund:
    """A refund finance is asked to collect; its id is the RequestRefund idempotency key.

    ``sends`` counts the request and its reminders; ``due_at`` is when the next reminder
    (or, after the last one, the escalation) is due.
    """

    refund_id: str
    application_id: str
    program_code: str
    cycle: str
    payer_reference: str
    amount: Money
    received: Money
    reason: str
    status: RefundStatus
    sends: int
    due_at: datetime
    last_error: str | None
    correlation_id: str
    created_at: datetime
    received_at: datetime | None

    @property
    def outstanding(self) -> Money:
        return self.amount - self.received

    @property
    def reminders(self) -> int:
        return self.sends - 1

    def may_remind(self, max_reminders: int) -> bool:
        return self.reminders < max_reminders

    def reminded(self, now: datetime, deadline: timedelta) -> Refund:
        return replace(self, sends=self.sends + 1, due_at=now + deadline)


def refund_receipt_disposition(
    refund: Refund | None, amount: Money, finance_reference: str, applied: set[str]
) -> Disposition:
    """What money received for a refund does: ``applied`` are the finance references
    already counted for it, so the same receipt again (Kafka, webhook, or both) counts once.
    More than is still due, or another currency, is held: the ledger records no more than
    was asked back."""
    if refund is None:
        return Disposition.UNKNOWN
    if finance_reference in applied:
        return Disposition.DUPLICATE
    if amount.currency != refund.amount.currency:
        return Disposition.MISMATCH
    if not 0 < amount.amount_minor <= refund.outstanding.amount_minor:
        return Disposition.MISMATCH
    return Disposition.APPLIED


def refund_failure_disposition(refund: Refund, max_reminders: int) -> Disposition:
    """Finance could not collect: remind again while reminders are left, else escalate."""
    if refund.status is not RefundStatus.REQUESTED:
        return Disposition.IGNORED
    if refund.may_remind(max_reminders):
        return Disposition.RETRYING
    return Disposition.FAILED


def refund_received_posting(application_id: str, amount_minor: int) -> Posting:
    """Money paid back leaves what the member owes and is the program's to award again."""
    return transfer(
        "refund_received",
        amount_minor,
        award_account(Account.REFUND_DUE, application_id),
        program_account(Account.AVAILABLE),
    )


# Foreign exchange -------------------------------------------------------------------------


def fx_difference(award_amount: Money, paid: Money, rate: str) -> Money:
    """What finance paid, back in the program currency at the recorded rate, less the award."""
    back = paid.converted(award_amount.currency, 1 / parse_rate(rate))
    return back - award_amount


# Signed webhook ---------------------------------------------------------------------------


class SignatureError(Exception):
    """The webhook call cannot be trusted; ``str(error)`` is safe to show the caller."""


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 over ``"<timestamp>."`` followed by the raw body."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_webhook(
    secret: str,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: datetime,
    tolerance: timedelta = WEBHOOK_TOLERANCE,
) -> None:
    if not timestamp or not signature:
        raise SignatureError("the call is not signed")
    if not re.fullmatch(r"[0-9]{1,12}", timestamp):
        raise SignatureError("the timestamp is not a Unix time in seconds")
    sent = int(timestamp)
    if abs(now.timestamp() - sent) > tolerance.total_seconds():
        raise SignatureError("the timestamp is too far from now")
    expected = webhook_signature(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise SignatureError("the signature does not match")
