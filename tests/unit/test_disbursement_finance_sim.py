"""The finance simulator's decisions (its Kafka side is tested in test_disbursement_flow)."""

from __future__ import annotations

from datetime import date

import pytest

from services.disbursement.finance_sim import _Finance
from shared.contracts.finance import (
    PaymentFailed,
    PaymentInstructed,
    PaymentSettled,
    RefundCollected,
    RefundCollectionFailed,
    RefundCollectionRequested,
)
from shared.contracts.money import Money


def instruction(instruction_id: str = "app-1:1") -> PaymentInstructed:
    amount = Money(amount_minor=35_000, currency="USD")
    return PaymentInstructed(
        instruction_id=instruction_id,
        application_id="app-1",
        payee_reference="payee-1",
        amount=amount,
        award_amount=amount,
        value_date=date(2027, 3, 1),
        memo="tranche 1",
    )


def test_an_instruction_sent_again_after_it_was_paid_gets_the_same_settlement() -> None:
    finance = _Finance(failure_rate=0, duplicate_rate=0, seed=3)
    first = finance.answer(instruction())
    again = finance.answer(instruction())
    assert isinstance(first.notice, PaymentSettled)
    assert again.notice == first.notice
    assert first.notice.amount == instruction().amount


def test_the_rates_decide_failures_and_duplicates() -> None:
    failing = _Finance(failure_rate=1, duplicate_rate=0, seed=None)
    assert isinstance(failing.answer(instruction()).notice, PaymentFailed)
    doubling = _Finance(failure_rate=0, duplicate_rate=1, seed=None)
    assert doubling.answer(instruction()).copies == 2


def test_the_same_seed_gives_the_same_answers() -> None:
    answers = [
        [_Finance(0.5, 0.5, seed=11).answer(instruction(f"a:{n}")) for n in range(20)]
        for _ in range(2)
    ]
    assert answers[0] == answers[1]


def test_rates_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        _Finance(failure_rate=1.5, duplicate_rate=0, seed=None)


def test_a_bank_that_rejects_the_first_sends_fails_each_instruction_that_often() -> None:
    finance = _Finance(failure_rate=0, duplicate_rate=0, seed=None, fail_first_sends=2)
    answers = [type(finance.answer(instruction()).notice) for _ in range(3)]
    expected: list[type] = [PaymentFailed, PaymentFailed, PaymentSettled]
    assert answers == expected
    assert isinstance(finance.answer(instruction("app-2:1")).notice, PaymentFailed)


def refund_request(outstanding: int = 27_000, reminder: int = 0) -> RefundCollectionRequested:
    return RefundCollectionRequested(
        refund_id="app-1:refund:underspend",
        application_id="app-1",
        payer_reference="payee-1",
        amount=Money(amount_minor=27_000, currency="USD"),
        outstanding=Money(amount_minor=outstanding, currency="USD"),
        reminder=reminder,
        reason="underspend",
    )


def test_finance_collects_what_is_outstanding_and_answers_a_reminder_with_the_same_receipt() -> (
    None
):
    finance = _Finance(failure_rate=0, duplicate_rate=0, seed=5)
    first = finance.collect(refund_request(outstanding=7_000))
    assert isinstance(first.notice, RefundCollected)
    assert first.notice.amount == Money(amount_minor=7_000, currency="USD")
    assert first.notice.finance_reference.startswith("SIM-R-")
    assert finance.collect(refund_request(reminder=1)).notice == first.notice


def test_the_refund_failure_rate_decides_which_refunds_are_not_collected() -> None:
    failing = _Finance(failure_rate=0, duplicate_rate=0, seed=None, refund_failure_rate=1)
    assert isinstance(failing.collect(refund_request()).notice, RefundCollectionFailed)
    # Payments are not affected by the refund knob.
    assert isinstance(failing.answer(instruction()).notice, PaymentSettled)
    with pytest.raises(ValueError, match="between 0 and 1"):
        _Finance(failure_rate=0, duplicate_rate=0, seed=None, refund_failure_rate=2)
