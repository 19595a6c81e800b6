"""The disbursement rules without a database: postings, decisions, retries, FX, signatures."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from services.disbursement.domain import (
    Account,
    Award,
    Balances,
    Budget,
    Disposition,
    Entry,
    Instruction,
    InstructionStatus,
    Posting,
    Refund,
    RefundStatus,
    Refusal,
    SignatureError,
    decide_adjustment,
    decide_payment,
    decide_refund,
    decide_reservation,
    failure_disposition,
    fx_difference,
    refund_failure_disposition,
    refund_receipt_disposition,
    refund_received_posting,
    settlement_conflicts,
    verify_webhook,
    webhook_signature,
)
from shared.contracts.money import Money

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def usd(minor: int) -> Money:
    return Money(amount_minor=minor, currency="USD")


def budget(available: int) -> Budget:
    return Budget("AUPAP", "2027", "USD", Balances("USD", {Account.AVAILABLE: available}))


def award(reserved: int = 0, in_payment: int = 0, disbursed: int = 0, awarded: int = 0) -> Award:
    balances = Balances(
        "USD",
        {Account.RESERVED: reserved, Account.IN_PAYMENT: in_payment, Account.DISBURSED: disbursed},
    )
    return Award("app-1", "AUPAP", "2027", usd(awarded), balances)


def test_a_posting_that_does_not_sum_to_zero_cannot_exist() -> None:
    with pytest.raises(ValueError, match="does not balance"):
        Posting("reserve", (Entry(Account.AVAILABLE, None, -5), Entry(Account.RESERVED, "a", 4)))


def test_an_award_account_needs_its_application() -> None:
    with pytest.raises(ValueError, match="reserved entry with application None"):
        Posting("reserve", (Entry(Account.AVAILABLE, None, -5), Entry(Account.RESERVED, None, 5)))


@pytest.mark.parametrize(
    ("available", "live_award", "amount", "reason"),
    [
        pytest.param(
            30_000,
            None,
            usd(40_000),
            "the AUPAP 2027 budget has 300.00 USD available, 400.00 USD requested",
            id="the budget is short, and it says what is left",
        ),
        pytest.param(
            30_000,
            None,
            Money(amount_minor=10, currency="EUR"),
            "budget is in USD",
            id="in another currency than the budget",
        ),
        pytest.param(
            90_000,
            award(reserved=10_000, awarded=10_000),
            usd(10_000),
            "adjust it instead",
            id="a second reservation for a live award",
        ),
    ],
)
def test_a_reservation_is_refused(
    available: int, live_award: Award | None, amount: Money, reason: str
) -> None:
    decision = decide_reservation(
        budget(available),
        live_award,
        application_id="app-1",
        program_code="AUPAP",
        cycle="2027",
        amount=amount,
    )
    assert isinstance(decision, Refusal) and reason in decision.reason


def test_a_tranche_cannot_take_more_than_is_reserved() -> None:
    decision = decide_payment(
        award(reserved=100, awarded=100),
        program_code="AUPAP",
        cycle="2027",
        tranche=2,
        amount=usd(101),
    )
    assert decision == Refusal("tranche 2 of 1.01 USD exceeds the 1.00 USD still reserved")


def test_an_award_increase_takes_only_what_the_budget_has() -> None:
    decision = decide_adjustment(
        budget(500),
        award(reserved=1_000, awarded=1_000),
        program_code="AUPAP",
        cycle="2027",
        new_award=usd(1_600),
    )
    assert isinstance(decision, Refusal) and "6.00 USD more needed" in decision.reason
    decision = decide_adjustment(
        budget(500),
        award(reserved=1_000, awarded=1_000),
        program_code="AUPAP",
        cycle="2027",
        new_award=usd(1_500),
    )
    assert not isinstance(decision, Refusal)
    assert decision.reserved == usd(1_500)


def instruction(
    status: InstructionStatus = InstructionStatus.PENDING, attempts: int = 1
) -> Instruction:
    return Instruction(
        instruction_id="app-1:1",
        application_id="app-1",
        program_code="AUPAP",
        cycle="2027",
        tranche=1,
        command_id="pay-1",
        correlation_id="c-1",
        payee_reference="payee-1",
        amount=usd(35_000),
        award_amount=usd(35_000),
        fx_rate=None,
        value_date=date(2027, 3, 1),
        memo="tranche 1",
        status=status,
        attempts=attempts,
        sends=attempts,
        due_at=NOW,
        last_error=None,
        finance_reference=None,
        settled_amount=None,
        settled_at=None,
        created_at=NOW,
    )


@pytest.mark.parametrize(
    ("status", "attempts", "disposition"),
    [
        (InstructionStatus.PENDING, 1, Disposition.RETRYING),
        (InstructionStatus.PENDING, 2, Disposition.RETRYING),
        (InstructionStatus.PENDING, 3, Disposition.FAILED),
        (InstructionStatus.ESCALATED, 3, Disposition.FAILED),
        (InstructionStatus.FAILED, 3, Disposition.IGNORED),
        (InstructionStatus.SETTLED, 1, Disposition.IGNORED),
    ],
)
def test_a_failed_payment_is_retried_until_its_attempts_are_used_up(
    status: InstructionStatus, attempts: int, disposition: Disposition
) -> None:
    assert failure_disposition(instruction(status, attempts), max_attempts=3) is disposition


def test_a_new_round_sends_the_same_instruction_again_for_the_new_command() -> None:
    failed = replace(instruction(InstructionStatus.FAILED, 3), last_error="account closed")
    again = failed.new_round("pay-1-officer", "c-2", NOW, timedelta(hours=1))
    assert (again.instruction_id, again.command_id, again.status) == (
        "app-1:1",
        "pay-1-officer",
        InstructionStatus.PENDING,
    )
    assert (again.attempts, again.sends, again.last_error) == (1, 4, None)
    assert again.due_at == NOW + timedelta(hours=1)


def test_a_settlement_after_a_final_failure_needs_the_reservation_back() -> None:
    failed = instruction(InstructionStatus.FAILED, 3)
    assert settlement_conflicts(failed, award(reserved=34_999, awarded=35_000))
    assert not settlement_conflicts(failed, award(reserved=35_000, awarded=35_000))
    assert not settlement_conflicts(instruction(), None)


def test_the_fx_difference_is_what_finance_paid_back_at_the_rate_less_the_award() -> None:
    paid = Money(amount_minor=1_294_000, currency="KES")
    assert fx_difference(usd(10_000), paid, "129.5") == usd(-8)
    # Back at the exact rate, rounded once, half up: 3 euro cents at 2 per dollar are 2 cents.
    euros = Money(amount_minor=3, currency="EUR")
    assert fx_difference(usd(1), euros, "2") == usd(1)


def test_a_webhook_signed_with_the_secret_over_timestamp_and_body_is_accepted() -> None:
    body = b'{"outcome":"settled"}'
    timestamp = str(int(NOW.timestamp()))
    signature = webhook_signature("s3cret", timestamp, body)
    verify_webhook("s3cret", timestamp=timestamp, signature=signature, body=body, now=NOW)


@pytest.mark.parametrize(
    ("secret", "sent_at", "body", "message"),
    [
        ("other", NOW, b"{}", "does not match"),
        ("s3cret", NOW, b"{} ", "does not match"),
        ("s3cret", NOW - timedelta(minutes=5, seconds=1), b"{}", "too far from now"),
        ("s3cret", NOW + timedelta(minutes=6), b"{}", "too far from now"),
    ],
    ids=["wrong-secret", "tampered-body", "stale", "from-the-future"],
)
def test_a_webhook_with_a_wrong_signature_or_timestamp_is_refused(
    secret: str, sent_at: datetime, body: bytes, message: str
) -> None:
    timestamp = str(int(sent_at.timestamp()))
    signature = webhook_signature(secret, timestamp, b"{}")
    with pytest.raises(SignatureError, match=message):
        verify_webhook("s3cret", timestamp=timestamp, signature=signature, body=body, now=NOW)


@pytest.mark.parametrize(("timestamp", "signature"), [(None, "ab"), ("1", None), ("", "")])
def test_an_unsigned_webhook_is_refused(timestamp: str | None, signature: str | None) -> None:
    with pytest.raises(SignatureError, match="not signed"):
        verify_webhook("s3cret", timestamp=timestamp, signature=signature, body=b"{}", now=NOW)


# Refunds ------------------------------------------------------------------------------------


def a_refund(asked: int = 30_000, received: int = 0, **changes: object) -> Refund:
    refund = Refund(
        refund_id="app-1:refund:underspend",
        application_id="app-1",
        program_code="AUPAP",
        cycle="2027",
        payer_reference="payee-1",
        amount=usd(asked),
        received=usd(received),
        reason="underspend",
        status=RefundStatus.REQUESTED,
        sends=1,
        due_at=NOW,
        last_error=None,
        correlation_id="c-1",
        created_at=NOW,
        received_at=None,
    )
    return replace(refund, **changes)  # type: ignore[arg-type]


def test_a_refund_moves_what_was_paid_into_refund_due_and_its_receipt_makes_it_available() -> None:
    award = Award(
        "app-1", "AUPAP", "2027", usd(50_000), Balances("USD", {Account.DISBURSED: 35_000})
    )
    asked, amount = decide_refund(award, program_code="AUPAP", cycle="2027", amount=usd(50_000))
    assert amount == usd(35_000)
    assert asked is not None
    back = refund_received_posting("app-1", 35_000)
    moved: dict[tuple[Account, str | None], int] = {}
    for entry in asked.entries + back.entries:
        key = (entry.account, entry.application_id)
        moved[key] = moved.get(key, 0) + entry.amount_minor
    assert {key: value for key, value in moved.items() if value} == {
        (Account.DISBURSED, "app-1"): -35_000,
        (Account.AVAILABLE, None): 35_000,
    }


def test_a_receipt_counts_once_per_finance_reference_and_never_beyond_what_is_due() -> None:
    refund = a_refund(asked=30_000, received=10_000)
    assert refund.outstanding == usd(20_000)
    assert refund_receipt_disposition(refund, usd(20_000), "FIN-2", {"FIN-1"}) == (
        Disposition.APPLIED
    )
    assert refund_receipt_disposition(refund, usd(5_000), "FIN-2", {"FIN-1"}) == (
        Disposition.APPLIED
    )
    assert refund_receipt_disposition(refund, usd(10_000), "FIN-1", {"FIN-1"}) == (
        Disposition.DUPLICATE
    )
    assert refund_receipt_disposition(refund, usd(20_001), "FIN-2", {"FIN-1"}) == (
        Disposition.MISMATCH
    )
    assert refund_receipt_disposition(refund, usd(0), "FIN-2", {"FIN-1"}) == Disposition.MISMATCH
    euros = Money(amount_minor=100, currency="EUR")
    assert refund_receipt_disposition(refund, euros, "FIN-2", set()) == Disposition.MISMATCH
    assert refund_receipt_disposition(None, usd(1), "FIN-2", set()) == Disposition.UNKNOWN


def test_a_refund_not_collected_is_asked_again_until_the_reminders_run_out() -> None:
    assert refund_failure_disposition(a_refund(sends=1), 2) == Disposition.RETRYING
    assert refund_failure_disposition(a_refund(sends=2), 2) == Disposition.RETRYING
    assert refund_failure_disposition(a_refund(sends=3), 2) == Disposition.FAILED
    overdue = a_refund(status=RefundStatus.OVERDUE)
    assert refund_failure_disposition(overdue, 2) == Disposition.IGNORED
    done = a_refund(status=RefundStatus.RECEIVED, received=30_000)
    assert refund_failure_disposition(done, 2) == Disposition.IGNORED


def test_a_reminder_is_due_one_reminder_period_after_it_is_sent() -> None:
    again = a_refund(sends=1).reminded(NOW, timedelta(days=7))
    assert (again.sends, again.reminders, again.due_at) == (2, 1, NOW + timedelta(days=7))
    assert again.may_remind(2) and not again.reminded(NOW, timedelta(days=7)).may_remind(2)
