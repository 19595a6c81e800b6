"""The disbursement rules without a database: postings, decisions, FX and signatures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.disbursement.domain import (
    Account,
    Award,
    Balances,
    Budget,
    Entry,
    Posting,
    Refusal,
    SignatureError,
    convert,
    decide_adjustment,
    decide_payment,
    decide_reservation,
    parse_rate,
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


def test_a_reservation_is_refused_when_the_budget_is_short_and_says_what_is_left() -> None:
    decision = decide_reservation(
        budget(30_000),
        None,
        application_id="app-1",
        program_code="AUPAP",
        cycle="2027",
        amount=usd(40_000),
    )
    assert decision == Refusal(
        "the AUPAP 2027 budget has 300.00 USD available, 400.00 USD requested"
    )


def test_a_reservation_in_another_currency_than_the_budget_is_refused() -> None:
    decision = decide_reservation(
        budget(30_000),
        None,
        application_id="app-1",
        program_code="AUPAP",
        cycle="2027",
        amount=Money(amount_minor=10, currency="EUR"),
    )
    assert isinstance(decision, Refusal) and "budget is in USD" in decision.reason


def test_a_second_reservation_for_a_live_award_is_refused() -> None:
    decision = decide_reservation(
        budget(90_000),
        award(reserved=10_000, awarded=10_000),
        application_id="app-1",
        program_code="AUPAP",
        cycle="2027",
        amount=usd(10_000),
    )
    assert isinstance(decision, Refusal) and "adjust it instead" in decision.reason


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


def test_conversion_to_a_payment_currency_rounds_half_up_to_its_minor_unit() -> None:
    assert convert(usd(1_001), Decimal("0.5"), "EUR") == Money(amount_minor=501, currency="EUR")
    assert convert(usd(10_000), Decimal("150.255"), "JPY") == Money(
        amount_minor=15_026, currency="JPY"
    )


@pytest.mark.parametrize("text", ["0", "-1", "abc", "NaN", "Infinity"])
def test_a_rate_must_be_a_positive_number(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


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
