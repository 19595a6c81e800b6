"""The finance simulator's decisions (its Kafka side is tested in test_disbursement_flow)."""

from __future__ import annotations

from datetime import date

import pytest

from services.disbursement.finance_sim import _Finance
from shared.contracts.finance import PaymentFailed, PaymentInstructed, PaymentSettled
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
    answers = [finance.answer(instruction()).notice for _ in range(3)]
    assert [type(answer) for answer in answers] == [PaymentFailed, PaymentFailed, PaymentSettled]
    assert isinstance(finance.answer(instruction("app-2:1")).notice, PaymentFailed)
