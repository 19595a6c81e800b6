"""Report rules: what a draft may hold, what a submission needs, when the state forbids it."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest
from pydantic import ValidationError

from services.reporting.domain import (
    Obligation,
    ReportDraft,
    ReportDraftIn,
    ReportState,
    SpendingEntry,
    checked_draft,
    complete_report,
    conversion_rates,
    overdue_costs_standing,
    total_spending,
)
from shared.contracts.money import Money
from shared.contracts.reporting import (
    ReportActivity,
    ReportOutcomes,
    ReportParticipants,
)
from shared.errors import ConflictError, InvalidError
from tests.support.reporting import budget_line, usd

TODAY = date(2027, 7, 20)


def obligation(state: ReportState = ReportState.REQUESTED) -> Obligation:
    return Obligation(
        report_id="R1",
        application_id="A1",
        member_id="m-1",
        state=state,
        due_on=date(2027, 7, 30),
        budget_lines=[
            budget_line("KES", 100_000_000, 770_000, "travel"),
            budget_line("KES", 30_000_000, 230_000, "venue"),
            budget_line("USD", 50_000, 50_000, "insurance"),
        ],
        awarded=usd(1_050_000),
    )


def kes(amount_minor: int) -> Money:
    return Money(amount_minor=amount_minor, currency="KES")


def full_draft(**changes: object) -> ReportDraft:
    values: dict[str, object] = {
        "participants": ReportParticipants(adults=4, youth=6),
        "activities": [ReportActivity(title="Clinic visit", held_on=date(2027, 7, 1))],
        "outcomes": ReportOutcomes(agreements_signed=1, narrative="An MOU."),
        "spending": [
            SpendingEntry(category="travel", amount=kes(65_000_000)),
            SpendingEntry(category="insurance", amount=usd(40_000)),
        ],
        "lessons_learned": "Plan the visas early.",
    }
    values.update(changes)
    return ReportDraft.model_validate(values)


def test_spending_converts_at_the_rate_recorded_with_the_budget() -> None:
    rates = conversion_rates(obligation().budget_lines, "USD")
    assert rates["KES"] == Fraction(1_000_000, 130_000_000)
    assert rates["USD"] == 1
    # 650,000.00 KES at 1/130 is 5,000.00 USD; half a cent rounds up.
    assert kes(65_000_000).converted("USD", rates["KES"]) == usd(500_000)
    assert kes(65).converted("USD", rates["KES"]) == usd(1)  # 0.5 cent -> 1 cent
    content = complete_report(full_draft(), obligation(), TODAY)
    assert [line.converted for line in content.spending] == [usd(500_000), usd(40_000)]
    assert total_spending(content, "USD") == usd(540_000)


def test_a_rate_between_currencies_of_different_minor_units_is_per_whole_unit() -> None:
    # The budget priced 1,000,000 JPY (no minor unit) at 6,700.00 USD.
    lines = [budget_line("JPY", 1_000_000, 670_000, "travel")]
    rates = conversion_rates(lines, "USD")
    assert rates["JPY"] == Fraction("0.0067")  # dollars per yen
    spent = Money(amount_minor=500_000, currency="JPY")
    assert spent.converted("USD", rates["JPY"]) == usd(335_000)


def test_a_draft_may_be_incomplete_but_not_wrong() -> None:
    stored = checked_draft(ReportDraft(lessons_learned="so far"), obligation())
    assert stored.spending == []
    with pytest.raises(InvalidError) as raised:
        checked_draft(
            ReportDraft(
                spending=[
                    SpendingEntry(category="catering", amount=usd(1)),
                    SpendingEntry(category="travel", amount=Money(amount_minor=5, currency="ZAR")),
                ]
            ),
            obligation(),
        )
    fields = {problem.field: problem.message for problem in raised.value.problems}
    assert "not a budget line" in fields["spending[0].category"]
    assert "no rate was recorded for ZAR" in fields["spending[1].amount.currency"]


def test_a_converted_amount_from_the_applicant_is_recomputed_at_the_recorded_rate() -> None:
    # A stored draft from before the rule, whose applicant wrote 1 USD for 650,000 KES:
    # reporting converts again (5,000 USD), so the underspend refund cannot be dodged.
    claimed = SpendingEntry(category="travel", amount=kes(65_000_000), converted=usd(100))
    content = complete_report(full_draft(spending=[claimed]), obligation(), TODAY)
    assert [line.converted for line in content.spending] == [usd(500_000)]


def test_the_applicants_draft_cannot_carry_converted_amounts() -> None:
    line = {"category": "travel", "amount": kes(1).model_dump(), "converted": usd(1).model_dump()}
    with pytest.raises(ValidationError, match="converted"):
        ReportDraftIn.model_validate({"spending": [line]})


def test_submission_names_every_missing_part() -> None:
    with pytest.raises(InvalidError) as raised:
        complete_report(ReportDraft(), obligation(), TODAY)
    assert {problem.field for problem in raised.value.problems} == {
        "participants",
        "activities",
        "outcomes",
        "spending",
        "lessons_learned",
    }


def test_an_activity_in_the_future_or_nobody_taking_part_is_refused() -> None:
    draft = full_draft(
        participants=ReportParticipants(adults=0, youth=0),
        activities=[ReportActivity(title="Later", held_on=date(2027, 8, 1))],
    )
    with pytest.raises(InvalidError) as raised:
        complete_report(draft, obligation(), TODAY)
    assert {tuple(problem.loc) for problem in raised.value.problems} == {
        ("body", "participants"),
        ("body", "activities", 0, "held_on"),
    }


def test_contract_rules_refuse_bad_values_by_field() -> None:
    with pytest.raises(ValidationError, match="ends_on must not be before held_on"):
        ReportActivity(title="x", held_on=date(2027, 7, 2), ends_on=date(2027, 7, 1))
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        SpendingEntry(category="travel", amount=usd(-1))
    with pytest.raises(ValidationError, match="extra_forbidden"):
        ReportDraft.model_validate({"state": "approved"})


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (ReportState.APPROVED, "already approved"),
        (ReportState.SUBMITTED, "under review"),
    ],
)
def test_an_approved_or_reviewed_report_cannot_change(state: ReportState, reason: str) -> None:
    with pytest.raises(ConflictError, match=reason):
        complete_report(full_draft(), obligation(state), TODAY)
    with pytest.raises(ConflictError, match=reason):
        checked_draft(full_draft(), obligation(state))


def test_changes_requested_reopens_the_report() -> None:
    content = complete_report(full_draft(), obligation(ReportState.CHANGES_REQUESTED), TODAY)
    assert content.lessons_learned == "Plan the visas early."


def test_overdue_costs_standing_only_while_the_report_is_outstanding() -> None:
    assert overdue_costs_standing(ReportState.REQUESTED)
    assert overdue_costs_standing(ReportState.CHANGES_REQUESTED)
    assert not overdue_costs_standing(ReportState.SUBMITTED)
    assert not overdue_costs_standing(ReportState.APPROVED)
