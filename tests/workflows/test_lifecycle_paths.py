"""Every lifecycle path on the time-skipping server, with stand-in services.

Each test runs twice (``max_cached_workflows`` 1000 and 0: the second replays the whole
history on every workflow task, so any non-determinism fails it). With
``GRANTFLOW_RECORD_HISTORIES=1`` each path's history is written to ``histories/`` for the
replay test. The paths on which a program officer is asked to act are in
``test_escalation_paths.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowUpdateStage

from bench.standins import partner_confirmed, program_rules
from shared.contracts import topics
from shared.contracts.disbursement import FundsReleased
from shared.contracts.envelope import deterministic_id
from shared.contracts.intake import (
    ApplicationResubmitted,
    ApplicationWithdrawn,
    PartnerCity,
    PartnerConfirmed,
)
from shared.contracts.programs import PartnerRequirement
from shared.contracts.review import ReviewerRecused
from shared.contracts.workflows import ApplicationStatusChanged
from tests.support.workflows import APPROVED_PATH, amendment, answer, review, submission, usd
from tests.workflows.support import (
    Handle,
    Lifecycle,
    StandInServices,
    application_id,
    escalations,
    reach,
)
from workflows.funding.models import (
    LIFECYCLE_MEMO,
    AmendmentDecision,
    LifecycleView,
    PartnerDecision,
    Stage,
)
from workflows.funding.workflow import ExchangeFundingWorkflow

wf = ExchangeFundingWorkflow


async def test_approved_application_is_paid_and_closed(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    assert services.stages() == list(APPROVED_PATH)
    payments = services.commands(topics.PAY_TRANCHE)
    assert [(p.tranche, p.amount) for p in payments] == [(1, usd(7_000)), (2, usd(3_000))]
    assert {p.idempotency_key for p in payments} == {
        f"{result.application_id}:1",
        f"{result.application_id}:2",
    }
    assert result.amounts.awarded == result.amounts.paid == usd(10_000)
    assert result.amounts.refunded is None
    assert not services.commands(topics.RELEASE_FUNDS)
    assert not escalations(services)


async def test_a_closed_lifecycle_keeps_its_last_view_in_the_memo(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    handles: list[Handle] = []

    async def keep(handle: Handle) -> None:
        handles.append(handle)

    result = await lifecycle.run(services, meanwhile=keep)

    # Read from the server alone: the worker has stopped.
    memo = await (await handles[0].describe()).memo()
    view = LifecycleView.model_validate(memo[LIFECYCLE_MEMO])
    assert view.stage is Stage.CLOSED and view.finished
    assert view.amounts == result.amounts
    assert [t.stage for t in view.history] == services.stages()
    assert view.outstanding_commands == []


async def test_ineligible_application_stops_at_screening(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    partner = submission().payload.partner.model_copy(update={"country": "FR"})
    application = await lifecycle.application(partner=partner)

    result = await lifecycle.run(services, application)

    assert result.stage is Stage.INELIGIBLE
    assert result.reason == (
        "partners in FR are not eligible for AUPAP; eligible countries: KE, GH, TZ"
    )
    assert services.stages() == ["screening", "ineligible"]
    assert not [sent for sent in services.sent if sent.kind == "command"]


async def test_low_score_declines_the_application(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.review_score = lambda _round: 1
    services.review_recommendation = "decline"

    result = await lifecycle.run(services)

    assert result.stage is Stage.DECLINED
    assert result.reason == "score 2000 bp is below the pass mark 6000"
    assert not services.commands(topics.RESERVE_FUNDS)
    declined = services.events(topics.APPLICATION_STATUS_CHANGED)[-1]
    assert [deadline.name for deadline in declined.deadlines] == ["override_window_ends"]


async def test_revision_requested_then_resubmitted_is_reviewed_again(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.review_score = lambda round_: 2 if round_ == 1 else 4
    services.review_recommendation = "revise"

    async def resubmit(handle: Handle, status: ApplicationStatusChanged) -> None:
        assert status.action_required is not None
        revised = ApplicationResubmitted(
            application_id=status.application_id,
            member_id=status.member_id,
            revision=1,
            requested=usd(9_000),
            summary="A smaller kiosk network, with the utility co-funding",
            budget_lines=[],
        )
        await handle.signal(wf.resubmitted, answer(revised, status.application_id, "intake"))

    services.on_stage["revision_requested"] = resubmit

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    rounds = services.commands(topics.REQUEST_REVIEWS)
    assert [r.round for r in rounds] == [1, 2]
    assert rounds[1].requested == usd(9_000)
    assert rounds[1].summary.startswith("A smaller kiosk network")
    assert result.amounts.awarded == usd(9_000)
    assert services.stages()[:5] == [
        "screening",
        "partner_confirmation",
        "review",
        "revision_requested",
        "review",
    ]


async def test_missed_revision_deadline_lapses_the_application(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.review_score = lambda _round: 2
    services.review_recommendation = "revise"

    result = await lifecycle.run(services)

    assert result.stage is Stage.REVISION_LAPSED
    reminders = services.events(topics.REMINDER_DUE)
    assert [reminder.about for reminder in reminders] == ["revision_due"]
    assert len(services.commands(topics.REQUEST_REVIEWS)) == 1


async def test_review_deadline_reassigns_the_late_reviews(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.answer_reviews = False

    async def new_reviewers_answer(handle: Handle, reassign: Any) -> None:
        assert reassign.task_id is None
        for index in (3, 4):
            late = review(reassign.application_id, reassign.round, index, 4)
            await handle.signal(wf.review_completed, answer(late, late.application_id, "review"))

    services.on_command[topics.REASSIGN_REVIEW.name] = new_reviewers_answer

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    (reassign,) = services.commands(topics.REASSIGN_REVIEW)
    assert reassign.reason == "review deadline passed"
    statuses = services.events(topics.APPLICATION_STATUS_CHANGED)
    late = [s for s in statuses if s.reason == "review deadline passed: late reviews reassigned"]
    assert len(late) == 1 and late[0].stage == "review"


async def test_recusal_reassigns_the_task(lifecycle: Lifecycle, services: StandInServices) -> None:
    async def one_reviews_one_recuses(handle: Handle, request: Any) -> None:
        app = request.application_id
        first = review(app, request.round, 1, 4)
        await handle.signal(wf.review_completed, answer(first, app, "review"))
        recusal = ReviewerRecused(
            application_id=app,
            round=request.round,
            task_id=f"{app}-r1-t2",
            reviewer_id="reviewer-1-2",
            reason="former employee of the partner city",
        )
        await handle.signal(wf.reviewer_recused, answer(recusal, app, "review"))

    async def replacement_reviews(handle: Handle, reassign: Any) -> None:
        replacement = review(reassign.application_id, reassign.round, 3, 4)
        await handle.signal(
            wf.review_completed, answer(replacement, reassign.application_id, "review")
        )

    services.on_command[topics.REQUEST_REVIEWS.name] = one_reviews_one_recuses
    services.on_command[topics.REASSIGN_REVIEW.name] = replacement_reviews

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    (reassign,) = services.commands(topics.REASSIGN_REVIEW)
    assert reassign.task_id == f"{result.application_id}-r1-t2"
    assert reassign.reason == "reviewer recused: former employee of the partner city"


async def test_insufficient_budget_waitlists_until_funds_are_released(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.refusals = 1

    async def another_application_releases(handle: Handle, status: Any) -> None:
        released = FundsReleased(
            application_id="app-other",
            command_id="release-other",
            amount=usd(12_000),
            program_code="AUPAP",
            cycle="2027",
        )
        await handle.signal(wf.funds_released, answer(released, "app-other", "disbursement"))

    services.on_stage["waitlisted"] = another_application_releases

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    reservations = services.commands(topics.RESERVE_FUNDS)
    assert len({r.command_id for r in reservations}) == 2
    assert {r.idempotency_key for r in reservations} == {f"{result.application_id}:reservation"}
    assert services.stages()[4:7] == ["funds_reservation", "waitlisted", "advance_payment"]


async def test_amendment_moves_the_dates_and_lowers_the_award(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    application = await lifecycle.application()
    new_end = application.payload.exchange_end + timedelta(days=10)

    async def amend(handle: Handle) -> None:
        await reach(handle, Stage.AWAITING_EXCHANGE)
        await handle.signal(
            wf.amendment_requested,
            amendment(
                application_id(handle), "am-1", new_exchange_end=new_end, new_award=usd(8_000)
            ),
        )
        answer = await handle.execute_update(
            wf.approve_amendment, AmendmentDecision(amendment_id="am-1", officer="po-1")
        )
        assert answer.message == "amendment am-1 approved"

    result = await lifecycle.run(services, application, meanwhile=amend)

    assert result.stage is Stage.CLOSED
    (adjust,) = services.commands(topics.ADJUST_AWARD)
    assert adjust.new_award == usd(8_000)
    payments = services.commands(topics.PAY_TRANCHE)
    assert [(p.tranche, p.amount) for p in payments] == [(1, usd(7_000)), (2, usd(1_000))]
    (report,) = services.commands(topics.REQUEST_REPORT)
    assert report.due_on == new_end + timedelta(days=31)
    assert result.amounts.awarded == result.amounts.paid == usd(8_000)
    amended = [s for s in services.events(topics.APPLICATION_STATUS_CHANGED) if s.reason]
    assert any("amendment am-1 approved" in (s.reason or "") for s in amended)


async def test_exchange_cancelled_after_the_advance_requests_a_refund(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    async def cancel(handle: Handle, status: Any) -> None:
        await handle.signal(
            wf.amendment_requested,
            amendment(status.application_id, "am-cancel", cancel_exchange=True, reason="floods"),
        )
        await handle.start_update(
            wf.approve_amendment,
            AmendmentDecision(amendment_id="am-cancel"),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )

    services.on_stage["awaiting_exchange"] = cancel

    result = await lifecycle.run(services)

    assert result.stage is Stage.CANCELLED
    (refund,) = services.commands(topics.REQUEST_REFUND)
    assert refund.amount == usd(7_000)
    assert len(services.commands(topics.RELEASE_FUNDS)) == 1
    assert not services.commands(topics.REQUEST_REPORT)
    assert result.amounts.refunded == usd(7_000)


async def test_report_changes_requested_then_approved(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.report_outcomes = ["changes_requested"]

    async def revise(handle: Handle, status: Any) -> None:
        assert status.action_required is not None
        await services.submit_report(handle, usd(10_000), revision=2)

    services.on_stage["report_changes_requested"] = revise

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    reviews = services.commands(topics.REQUEST_REPORT_REVIEW)
    assert len({r.command_id for r in reviews}) == 2
    stages = services.stages()
    assert stages[stages.index("report_review") :][:3] == [
        "report_review",
        "report_changes_requested",
        "report_review",
    ]


async def test_underspend_is_released_and_partly_refunded(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.actual_spending = usd(5_000)

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    assert [p.tranche for p in services.commands(topics.PAY_TRANCHE)] == [1]
    (refund,) = services.commands(topics.REQUEST_REFUND)
    assert refund.amount == usd(2_000)
    (release,) = services.commands(topics.RELEASE_FUNDS)
    assert release.reason == "close-out: unspent funds"
    assert result.amounts.paid == usd(7_000)
    assert result.amounts.refunded == usd(2_000)


async def applicant_withdraws(handle: Handle, status: Any) -> None:
    withdrawn = ApplicationWithdrawn(
        application_id=status.application_id, member_id=status.member_id, reason="no visas"
    )
    await handle.signal(wf.withdrawn, answer(withdrawn, status.application_id, "intake"))


async def test_withdrawal_before_the_advance_releases_the_reservation(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.on_stage["funds_reservation"] = applicant_withdraws

    result = await lifecycle.run(services)

    assert result.stage is Stage.WITHDRAWN
    assert result.reason == "withdrawn: no visas"
    assert len(services.commands(topics.RELEASE_FUNDS)) == 1
    assert not services.commands(topics.PAY_TRANCHE)
    assert not services.commands(topics.REQUEST_REFUND)


async def test_withdrawal_after_the_advance_requests_a_refund(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.on_stage["awaiting_exchange"] = applicant_withdraws

    result = await lifecycle.run(services)

    assert result.stage is Stage.WITHDRAWN
    (refund,) = services.commands(topics.REQUEST_REFUND)
    assert refund.amount == usd(7_000)
    assert len(services.commands(topics.RELEASE_FUNDS)) == 1
    assert result.amounts.refunded == usd(7_000)
    assert services.stages()[-2:] == ["withdrawing", "withdrawn"]


async def test_duplicate_and_early_events_are_used_once(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.partner = "never"
    services.answer_reviews = False
    services.duplicate_answers = True

    async def events_before_their_requests(handle: Handle) -> None:
        app = application_id(handle)
        confirmed = answer(
            PartnerConfirmed(
                application_id=app, partner_contact_email="partner@kisumu.example", confirmed=True
            ),
            app,
            "intake",
        )
        reviews = [answer(review(app, 1, index, 4), app, "review") for index in (1, 2)]
        for event in [reviews[0], confirmed, reviews[0], reviews[1], confirmed]:
            signal = wf.partner_confirmed if event is confirmed else wf.review_completed
            await handle.signal(signal, event)

    result = await lifecycle.run(services, meanwhile=events_before_their_requests)

    assert result.stage is Stage.CLOSED
    assert result.amounts.paid == usd(10_000)
    assert len(services.commands(topics.PAY_TRANCHE)) == 2
    assert len(services.commands(topics.REQUEST_REVIEWS)) == 1
    assert not services.commands(topics.REASSIGN_REVIEW)
    assert "partner_unconfirmed" not in services.stages()


async def test_lost_command_is_sent_again_with_the_same_id(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    services.drop[topics.RESERVE_FUNDS.name] = 1

    result = await lifecycle.run(services)

    assert result.stage is Stage.CLOSED
    sends = [s for s in services.sent if s.topic == topics.RESERVE_FUNDS.name]
    assert len(sends) == 2
    command_id = sends[0].payload.command_id
    assert sends[1].payload == sends[0].payload
    assert [s.event_id for s in sends] == [
        deterministic_id(command_id, "send", "1"),
        deterministic_id(command_id, "send", "2"),
    ]
    assert command_id == str(
        deterministic_id(f"application-{result.application_id}", "reserve", "1")
    )


# -- an exchange among three sister cities --------------------------------------------------

TORONTO = PartnerCity(
    name="Toronto", country="CA", contact_name="Amélie Roy", contact_email="twin@toronto.example"
)
PUEBLA = PartnerCity(
    name="Puebla", country="MX", contact_name="Luis Ortega", contact_email="amistad@puebla.example"
)


async def trilateral(lifecycle: Lifecycle) -> Any:
    """The Tri-lateral North America program's shape: a partner in Canada and one in Mexico."""
    today = (await lifecycle.env.get_current_time()).date()
    rules = program_rules(
        today,
        eligible_partner_countries=["CA", "MX"],
        required_partners=[
            PartnerRequirement(countries=["CA"]),
            PartnerRequirement(countries=["MX"]),
        ],
    )
    return await lifecycle.application(rules=rules, partner=TORONTO, other_partners=[PUEBLA])


async def test_a_trilateral_exchange_waits_for_both_partners_and_reviewers_see_both(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    result = await lifecycle.run(services, await trilateral(lifecycle))

    assert result.stage is Stage.CLOSED
    requests = services.commands(topics.REQUEST_PARTNER_CONFIRMATION)
    assert sorted(r.partner_contact_email for r in requests) == [
        "amistad@puebla.example",
        "twin@toronto.example",
    ]
    assert len({r.command_id for r in requests}) == 2
    waiting = services.events(topics.APPLICATION_STATUS_CHANGED)[1]
    assert waiting.reason == "waiting for Toronto and Puebla to confirm their participation"
    (review_request,) = services.commands(topics.REQUEST_REVIEWS)
    assert review_request.application is not None
    assert [(p.name, p.country) for p in review_request.application.partners] == [
        ("Toronto", "CA"),
        ("Puebla", "MX"),
    ]


async def test_one_partner_silent_goes_to_an_officer_who_lets_the_exchange_proceed(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    async def only_toronto_answers(handle: Handle, request: Any) -> None:
        if request.partner_city == "Toronto":
            confirmed = partner_confirmed(request, confirmed=True)
            await handle.signal(
                wf.partner_confirmed, answer(confirmed, request.application_id, "intake")
            )

    standings: list[Any] = []

    async def officer_proceeds(handle: Handle, _status: Any) -> None:
        view = await handle.query(wf.lifecycle)
        standings.extend((p.name, p.country, p.confirmed) for p in view.partners)
        decision = PartnerDecision(proceed=True, reason="Puebla confirmed by phone")
        await handle.start_update(
            wf.decide_partner, decision, wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )

    services.on_command[topics.REQUEST_PARTNER_CONFIRMATION.name] = only_toronto_answers
    services.on_stage["partner_unconfirmed"] = officer_proceeds

    result = await lifecycle.run(services, await trilateral(lifecycle))

    assert result.stage is Stage.CLOSED
    (escalation,) = escalations(services)
    assert escalation.kind == "partner_unconfirmed"
    assert escalation.reason.startswith("Puebla did not confirm participation")
    # What the officer sees before deciding: who confirmed and who is silent.
    assert standings == [("Toronto", "CA", True), ("Puebla", "MX", None)]


async def test_a_partner_declining_declines_the_trilateral_application(
    lifecycle: Lifecycle, services: StandInServices
) -> None:
    async def puebla_declines(handle: Handle, request: Any) -> None:
        confirmed = partner_confirmed(request, confirmed=request.partner_city != "Puebla")
        await handle.signal(
            wf.partner_confirmed, answer(confirmed, request.application_id, "intake")
        )

    services.on_command[topics.REQUEST_PARTNER_CONFIRMATION.name] = puebla_declines

    result = await lifecycle.run(services, await trilateral(lifecycle))

    assert result.stage is Stage.DECLINED
    assert result.reason == "Puebla declined to take part"
    assert not services.commands(topics.REQUEST_REVIEWS)
