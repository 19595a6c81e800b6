"""The lifecycle paths on which a program officer is asked to act, on the time-skipping server.

Each escalation names its kind; the status events say which kinds are still waiting for an
officer (``waiting_for_officer``), and a later status event without the kind says that its
cause was resolved: that is how the officers' attention list reads them
(``officer_attention``). Histories are recorded and replayed as for every path.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage

from shared.contracts import topics
from shared.contracts.review import ReviewersShort
from tests.support.workflows import amendment, answer, usd
from tests.workflows.support import (
    Handle,
    Lifecycle,
    StandInServices,
    escalations,
    officer_attention,
)
from workflows.funding.models import (
    AmendmentDecision,
    OverrideDecision,
    PartnerDecision,
    ResendCommand,
    Stage,
)
from workflows.funding.workflow import ExchangeFundingWorkflow

wf = ExchangeFundingWorkflow
ACCEPTED = WorkflowUpdateStage.ACCEPTED


async def test_partner_never_confirms_and_an_officer_lets_it_proceed(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.partner = "never"

    async def officer_decides(handle: Handle, _status: Any) -> None:
        decision = PartnerDecision(proceed=True, reason="confirmed by phone", officer="po-1")
        await handle.start_update(
            wf.decide_partner, decision, wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )

    services.on_stage["partner_unconfirmed"] = officer_decides

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    assert services.stages()[:4] == [
        "screening",
        "partner_confirmation",
        "partner_unconfirmed",
        "review",
    ]
    assert officer_attention(services) == [("partner_unconfirmed", True, True)]
    requests = services.commands(topics.REQUEST_PARTNER_CONFIRMATION)
    assert len(requests) > 1, "an unanswered request is re-sent before its deadline"
    assert {r.command_id for r in requests} == {requests[0].command_id}


async def test_officer_override_awards_less_when_reviewers_are_short(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    async def too_few_reviewers(handle: Handle, request: Any) -> None:
        short = ReviewersShort(
            application_id=request.application_id, round=request.round, needed=2, assigned=1
        )
        await handle.signal(wf.reviewers_short, answer(short, request.application_id, "review"))

    async def officer_awards(handle: Handle, _status: Any) -> None:
        decision = OverrideDecision(
            outcome="awarded", award=usd(8_000), reason="strong case, smaller budget"
        )
        await handle.start_update(
            wf.override_decision, decision, wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )

    services.on_command[topics.REQUEST_REVIEWS.name] = too_few_reviewers
    services.on_stage["reviewers_short"] = officer_awards

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    assert officer_attention(services) == [("reviewers_short", True, True)]
    assert result.amounts.requested == usd(10_000)
    assert result.amounts.awarded == result.amounts.paid == usd(8_000)
    awarded = services.events(topics.APPLICATION_STATUS_CHANGED)[services.stages().index("awarded")]
    assert awarded.reason is not None and "officer override" in awarded.reason


async def test_late_report_brings_reminders_then_overdue_then_restores_standing(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.report = "never"

    async def report_arrives(handle: Handle, overdue: Any) -> None:
        await services.submit_report(handle, usd(10_000), revision=1)

    services.on_event[topics.REPORT_OVERDUE.name] = report_arrives

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    reminders = services.events(topics.REMINDER_DUE)
    assert [r.about for r in reminders] == [
        "report_due",
        "report_due",
        "report_overdue",
        "report_overdue",
    ]
    (overdue,) = services.events(topics.REPORT_OVERDUE)
    (request,) = {r.command_id: r for r in services.commands(topics.REQUEST_REPORT)}.values()
    assert overdue.due_on == request.due_on
    statuses = services.events(topics.APPLICATION_STATUS_CHANGED)
    stages = [s.stage for s in statuses]
    assert stages[stages.index("report_due") : stages.index("report_review") + 1] == [
        "report_due",
        "report_overdue",
        "report_review",
    ]
    on_hold = statuses[stages.index("report_overdue")]
    assert on_hold.reason is not None and "final tranche is on hold" in on_hold.reason
    restored = statuses[stages.index("report_review")]
    assert restored.reason is not None and "good standing restored" in restored.reason
    assert [p.tranche for p in services.commands(topics.PAY_TRANCHE)] == [1, 2]
    assert officer_attention(services) == [("report_overdue", True, True)]
    (escalation,) = escalations(services)
    assert escalation.stage == "report_overdue"


async def test_review_deadline_passing_again_and_again_asks_an_officer(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.answer_reviews = False

    async def officer_awards(handle: Handle, escalation: Any) -> None:
        if escalation.kind == "reviews_late":
            decision = OverrideDecision(outcome="awarded", reason="the reviews will not come")
            await handle.start_update(wf.override_decision, decision, wait_for_stage=ACCEPTED)

    services.on_event[topics.ESCALATED_TO_OFFICER.name] = officer_awards

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    reassigned = services.commands(topics.REASSIGN_REVIEW)
    assert [r.reason for r in reassigned] == ["review deadline passed"] * 3
    (escalation,) = escalations(services)
    assert escalation.stage == "review"
    assert escalation.reason.endswith("the review deadline passed 3 times")
    assert officer_attention(services) == [("reviews_late", True, True)]


async def test_payment_failed_for_good_is_escalated_at_once_and_an_officer_pays_again(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.drop[topics.PAY_TRANCHE.name] = 1  # the first instruction is lost on the way
    services.payment_failures = 1

    async def officer_pays_again(handle: Handle, escalation: Any) -> None:
        if escalation.kind == "payment_failing":
            request = ResendCommand(step="pay", officer="po-1")
            await handle.start_update(wf.resend_command, request, wait_for_stage=ACCEPTED)

    services.on_event[topics.ESCALATED_TO_OFFICER.name] = officer_pays_again

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    payments = services.commands(topics.PAY_TRANCHE)
    assert [p.tranche for p in payments] == [1, 1, 1, 2]
    lost, failed, paid_again, _final = payments
    assert failed == lost, "a command without an answer is sent again as it was"
    assert paid_again.command_id != failed.command_id
    assert paid_again.idempotency_key == failed.idempotency_key == f"{result.application_id}:1"
    (escalation,) = escalations(services)
    assert (escalation.kind, escalation.stage) == ("payment_failing", "payment_escalated")
    assert officer_attention(services) == [("payment_failing", True, True)]
    stages = services.stages()
    assert stages[stages.index("advance_payment") :][:3] == [
        "advance_payment",
        "payment_escalated",
        "advance_payment",
    ]
    assert result.amounts.paid == usd(10_000)


async def test_amendment_waits_for_an_officer_until_decided(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    application = await lifecycle.application()
    new_end = application.payload.exchange_end + timedelta(days=5)

    async def member_asks_for_an_amendment(handle: Handle, status: Any) -> None:
        requested = amendment(status.application_id, "am-2", new_exchange_end=new_end)
        await handle.signal(wf.amendment_requested, requested)

    async def officer_approves(handle: Handle, _status: Any) -> None:
        decision = AmendmentDecision(amendment_id="am-2", officer="po-1")
        await handle.start_update(wf.approve_amendment, decision, wait_for_stage=ACCEPTED)

    services.on_stage["advance_payment"] = member_asks_for_an_amendment
    services.on_stage["awaiting_exchange"] = officer_approves

    result = await lifecycle.run(services, application)

    assert result.stage is Stage.CLOSED
    (escalation,) = escalations(services)
    assert (escalation.kind, escalation.stage) == ("amendment_waiting", "advance_payment")
    assert "amendment am-2" in escalation.reason
    assert officer_attention(services) == [("amendment_waiting", True, True)]
    statuses = services.events(topics.APPLICATION_STATUS_CHANGED)
    waiting = [s for s in statuses if "amendment_waiting" in s.waiting_for_officer]
    # Acknowledged at once, in the stage it arrived in, then waiting until decided.
    assert [(s.stage, s.reason) for s in waiting] == [
        ("advance_payment", "amendment am-2 received; a program officer decides it"),
        ("awaiting_exchange", "the advance is paid; waiting for the exchange to end"),
    ]
    (report,) = services.commands(topics.REQUEST_REPORT)
    assert report.due_on == new_end + timedelta(days=31)


async def test_amendment_approved_before_the_exchange_wait_is_applied_when_it_begins(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    application = await lifecycle.application()
    new_end = application.payload.exchange_end + timedelta(days=5)
    answers: list[str] = []

    async def asked_and_approved_during_the_advance(handle: Handle, status: Any) -> None:
        requested = amendment(status.application_id, "am-4", new_exchange_end=new_end)
        await handle.signal(wf.amendment_requested, requested)
        decision = AmendmentDecision(amendment_id="am-4", officer="po-1")
        answers.append((await handle.execute_update(wf.approve_amendment, decision)).message)

    services.on_stage["advance_payment"] = asked_and_approved_during_the_advance

    result = await lifecycle.run(services, application)

    assert result.stage is Stage.CLOSED
    assert answers == ["amendment am-4 approved; applied when the wait for the exchange begins"]
    (report,) = services.commands(topics.REQUEST_REPORT)
    assert report.due_on == new_end + timedelta(days=31)
    assert officer_attention(services) == [("amendment_waiting", True, True)]


async def test_amendment_after_the_exchange_cuts_the_award_below_what_was_paid_and_refunds(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    refused: list[str] = []
    answers: list[str] = []

    async def member_and_officer_during_the_report_review(handle: Handle, status: Any) -> None:
        later = amendment(status.application_id, "am-late", new_exchange_end=date.today())
        cut = amendment(status.application_id, "am-cut", new_award=usd(5_000), reason="fewer came")
        await handle.signal(wf.amendment_requested, later)
        await handle.signal(wf.amendment_requested, cut)
        try:
            await handle.execute_update(
                wf.approve_amendment, AmendmentDecision(amendment_id="am-late")
            )
        except WorkflowUpdateFailedError as error:
            refused.append(str(error.cause))
        await handle.execute_update(
            wf.approve_amendment,
            AmendmentDecision(amendment_id="am-late", approve=False, reason="too late"),
        )
        decision = AmendmentDecision(amendment_id="am-cut", officer="po-1")
        answers.append((await handle.execute_update(wf.approve_amendment, decision)).message)

    services.on_stage["report_review"] = member_and_officer_during_the_report_review

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    assert len(refused) == 1 and "only the award can still change" in refused[0]
    assert answers == ["amendment am-cut approved; applied before the final payment"]
    (adjust,) = services.commands(topics.ADJUST_AWARD)
    assert adjust.new_award == usd(5_000)
    # 7,000 was paid in advance: the 2,000 above the new award comes back, nothing more is paid.
    (refund,) = services.commands(topics.REQUEST_REFUND)
    assert refund.amount == usd(2_000)
    assert [(p.tranche, p.amount) for p in services.commands(topics.PAY_TRANCHE)] == [
        (1, usd(7_000))
    ]
    assert result.amounts.awarded == usd(5_000)
    assert result.amounts.paid == usd(7_000) and result.amounts.refunded == usd(2_000)
    assert officer_attention(services) == [
        ("amendment_waiting", True, True),
        ("amendment_waiting", True, True),
    ]


async def test_silent_reservation_asks_an_officer_who_sends_it_again(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.drop[topics.RESERVE_FUNDS.name] = 5

    async def officer_resends(handle: Handle, escalation: Any) -> None:
        if escalation.kind == "command_unanswered":
            request = ResendCommand(step="reserve", officer="po-1")
            await handle.start_update(wf.resend_command, request, wait_for_stage=ACCEPTED)

    services.on_event[topics.ESCALATED_TO_OFFICER.name] = officer_resends

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    reservations = services.commands(topics.RESERVE_FUNDS)
    assert len(reservations) == 6
    assert {r.command_id for r in reservations} == {reservations[0].command_id}
    (escalation,) = escalations(services)
    assert (escalation.kind, escalation.stage) == ("command_unanswered", "funds_reservation")
    assert officer_attention(services) == [("command_unanswered", False, True)]
    statuses = services.events(topics.APPLICATION_STATUS_CHANGED)
    (resent,) = [s for s in statuses if (s.reason or "").startswith("re-sent")]
    assert resent.reason == "re-sent: reserve by po-1"


async def test_reviewers_far_apart_wait_for_an_officer_who_adds_a_reviewer_then_awards(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    # 5, 1, then 4 of 5: weighted totals 10000, 2000 and 8000 bp, never within 2500 bp.
    services.reviewer_score = lambda _round, index: {1: 5, 2: 1, 3: 4}[index]
    spreads: list[str] = []

    async def officer_decides(handle: Handle, escalation: Any) -> None:
        if escalation.kind != "wide_score_spread":
            return
        spreads.append(escalation.reason)
        if len(spreads) == 1:
            decision = OverrideDecision(outcome="another_review", reason="a third opinion")
        else:
            decision = OverrideDecision(outcome="awarded", reason="the project is sound")
        await handle.start_update(wf.override_decision, decision, wait_for_stage=ACCEPTED)

    services.on_event[topics.ESCALATED_TO_OFFICER.name] = officer_decides

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    assert spreads[0] == (
        "round 1: the reviewers' weighted totals (2000 bp, 10000 bp) lie 8000 bp apart, "
        "more than the program's 2500 bp"
    )
    assert "(2000 bp, 8000 bp, 10000 bp)" in spreads[1]
    requests = {r.command_id: r for r in services.commands(topics.REQUEST_REVIEWS)}.values()
    assert [r.reviews_needed for r in requests] == [2, 3]
    # Reviewers judge feasibility on the whole application, not on its summary alone.
    for request in requests:
        assert request.application is not None
        assert [p.name for p in request.application.partners] == ["Kisumu"]
        assert request.application.budget_lines
    assert officer_attention(services) == [
        ("wide_score_spread", True, True),
        ("wide_score_spread", True, True),
    ]
    statuses = services.events(topics.APPLICATION_STATUS_CHANGED)
    reasons = [s.reason or "" for s in statuses]
    assert any("another reviewer asked: a third opinion" in reason for reason in reasons)
    awarded = statuses[services.stages().index("awarded")]
    assert awarded.reason is not None and "officer override" in awarded.reason


async def test_reviewers_far_apart_an_officer_declines_and_another_reviewer_is_refused_before(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.reviewer_score = lambda _round, index: {1: 5, 2: 0}[index]
    refused: list[str] = []

    async def too_early(handle: Handle, _status: Any) -> None:
        early = OverrideDecision(outcome="another_review", reason="before any review")
        try:
            await handle.execute_update(wf.override_decision, early)
        except WorkflowUpdateFailedError as error:
            refused.append(str(error.cause))

    async def officer_declines(handle: Handle, escalation: Any) -> None:
        if escalation.kind == "wide_score_spread":
            decision = OverrideDecision(outcome="declined", reason="not convincing")
            await handle.start_update(wf.override_decision, decision, wait_for_stage=ACCEPTED)

    services.on_stage["review"] = too_early
    services.on_event[topics.ESCALATED_TO_OFFICER.name] = officer_declines

    result = await lifecycle.run(services)

    assert result.stage is Stage.DECLINED
    assert len(refused) == 1 and "only while the reviewers' scores lie too far apart" in refused[0]
    assert officer_attention(services) == [("wide_score_spread", True, True)]
    assert not services.commands(topics.RESERVE_FUNDS)
