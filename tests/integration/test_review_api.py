"""The review service as reviewers and officers use it: HTTP in, tasks, events and mail out.

In-process on a fresh SQLite database per test (no broker: events are checked in the
outbox, which the relay would publish; the flow through Kafka is in test_review_flow.py).
"""

from __future__ import annotations

import email
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.review.domain import TaskStatus
from shared.mail import FileMailer
from tests.support.review import (
    NOW,
    ReviewHarness,
    reassign,
    report_review,
    report_submitted,
    request_reviews,
    review_body,
    reviewer,
)


async def with_panel(review: ReviewHarness) -> None:
    """Two experts, one generalist, one from the applicant's city, one with a conflict."""
    await review.add_reviewers(
        reviewer("expert-a", "Asheville", capacity=3),
        reviewer("expert-b", "Boise", capacity=3),
        reviewer("generalist", "Chico", programs=(), focus_areas=(), regions=()),
        reviewer("local", "Roanoke", capacity=10),
        reviewer("conflicted", "Dayton", capacity=10, conflict_members=("member-kisumu",)),
    )


async def open_task_of(
    review: ReviewHarness, reviewer_id: str, application_id: str = "app-1"
) -> str:
    [task] = [
        t
        for t in await review.tasks(application_id)
        if t.reviewer_id == reviewer_id and t.status is TaskStatus.OPEN
    ]
    return task.id


async def test_a_review_request_goes_to_the_best_eligible_reviewers_who_get_mail(
    review: ReviewHarness,
) -> None:
    await with_panel(review)
    await review.deliver(request_reviews(reviews_needed=2))
    tasks = await review.tasks("app-1")
    assert sorted(t.reviewer_id for t in tasks) == ["expert-a", "expert-b"]
    assert {t.due_at for t in tasks} == {NOW + timedelta(days=14)}
    mail = await review.queued_mail()
    assert sorted(m.recipients[0] for m in mail) == [
        "expert-a@reviewers.example.org",
        "expert-b@reviewers.example.org",
    ]
    assert all("/inbox/tasks/" in m.body and "due on 2027-03-15" in m.body for m in mail)


async def test_a_redelivered_or_resent_request_creates_no_second_set_of_tasks(
    review: ReviewHarness,
) -> None:
    await with_panel(review)
    first = request_reviews(reviews_needed=2)
    await review.deliver(first)
    await review.deliver(first)
    # Re-sent by the workflow after its deadline: a new envelope, the same command.
    await review.deliver(request_reviews(reviews_needed=2))
    # The same round under another command id is still the same round.
    await review.deliver(request_reviews(reviews_needed=2, command_id="other"))
    assert len(await review.tasks("app-1")) == 2
    assert len(await review.queued_mail()) == 2


async def test_too_few_eligible_reviewers_are_reported_so_the_workflow_escalates(
    review: ReviewHarness,
) -> None:
    await with_panel(review)
    await review.deliver(request_reviews(reviews_needed=4))
    # expert-a, expert-b and the generalist; never "local" (the applicant's city) nor
    # "conflicted" (declared a conflict with the member).
    assert sorted(t.reviewer_id for t in await review.tasks("app-1")) == [
        "expert-a",
        "expert-b",
        "generalist",
    ]
    [short] = await review.outbox("grants.review.reviewers_short.v1")
    assert short.payload == {
        "application_id": "app-1",
        "round": 1,
        "needed": 4,
        "assigned": 3,
        "report_id": None,
    }
    # An officer adds a reviewer and staffs the empty slot.
    await review.add_reviewers(reviewer("newcomer", "Erie"))
    [request] = (
        await review.client.get(
            "/v1/officer/applications/app-1/requests", headers=review.as_officer()
        )
    ).json()
    assert (request["staffed"], request["reviews_needed"]) == (3, 4)
    response = await review.client.post(
        f"/v1/officer/requests/{request['id']}/assign", json={}, headers=review.as_officer()
    )
    assert response.status_code == 201, response.text
    assert response.json()["reviewer_id"] == "newcomer"
    full = await review.client.post(
        f"/v1/officer/requests/{request['id']}/assign", json={}, headers=review.as_officer()
    )
    assert full.status_code == 409


async def test_my_queue_shows_only_my_open_tasks_soonest_due_first(review: ReviewHarness) -> None:
    await with_panel(review)
    await review.deliver(request_reviews("app-late", due_at=NOW + timedelta(days=20)))
    await review.deliver(
        request_reviews("app-soon", due_at=NOW + timedelta(days=5), reviews_needed=1)
    )
    response = await review.client.get("/v1/tasks", headers=review.as_reviewer("expert-a"))
    assert response.status_code == 200
    assert [t["application_id"] for t in response.json()] == ["app-soon", "app-late"]
    others = await review.client.get("/v1/tasks", headers=review.as_reviewer("expert-b"))
    assert [t["application_id"] for t in others.json()] == ["app-late"]
    soon_only = await review.client.get(
        "/v1/tasks",
        params={"due_before": (NOW + timedelta(days=10)).isoformat()},
        headers=review.as_reviewer("expert-a"),
    )
    assert [t["application_id"] for t in soon_only.json()] == ["app-soon"]
    # A number is not a date-time, though lax parsing would read it as Unix time.
    for not_a_time in ("0", "0.5", "2027-05-10", "2027-05-10T09:00:00"):
        refused = await review.client.get(
            "/v1/tasks",
            params={"due_before": not_a_time},
            headers=review.as_reviewer("expert-a"),
        )
        assert refused.status_code == 422, (not_a_time, refused.text)
        assert refused.json()["detail"][0]["field"] == "due_before"


async def test_blind_review_hides_the_applicant_from_reviewers_not_from_officers(
    review: ReviewHarness,
) -> None:
    await with_panel(review)
    await review.deliver(request_reviews(blind_review=True))
    task_id = await open_task_of(review, "expert-a")
    seen = (
        await review.client.get(f"/v1/tasks/{task_id}", headers=review.as_reviewer("expert-a"))
    ).json()
    application = seen["application"]
    assert application["identity_withheld"] is True
    assert application["member_id"] is None and application["member_city"] is None
    assert application["partner_city"] is None
    assert "Roanoke" not in application["title"] + application["summary"]
    assert "Kisumu" not in application["summary"]
    details = application["details"]
    assert details["partners"] == [{"name": "[withheld]", "country": "KE"}]
    assert (
        details["objectives"] == "Six [withheld] engineers learn kiosk maintenance in [withheld]."
    )
    assert "Kisumu" not in json.dumps(details) and "Roanoke" not in json.dumps(details)
    assert [line["category"] for line in details["budget_lines"]] == ["travel", "lodging"]
    assert seen["rubric"]["criteria"][0]["name"] == "relevance"
    assert seen["recommendations"] == ["approve", "decline", "revise"]
    officer_view = (
        await review.client.get(f"/v1/officer/tasks/{task_id}", headers=review.as_officer())
    ).json()
    assert officer_view["application"]["member_city"] == "Roanoke"


async def test_a_reviewer_reads_the_whole_application_to_judge_its_feasibility(
    review: ReviewHarness,
) -> None:
    await with_panel(review)
    await review.deliver(request_reviews())
    task_id = await open_task_of(review, "expert-a")
    seen = (
        await review.client.get(f"/v1/tasks/{task_id}", headers=review.as_reviewer("expert-a"))
    ).json()
    details = seen["application"]["details"]
    assert details["objectives"] == "Six Kisumu engineers learn kiosk maintenance in Roanoke."
    assert details["partners"] == [{"name": "Kisumu", "country": "KE"}]
    assert (details["adults"], details["youth"]) == (6, 0)
    assert details["exchange_start"] < details["exchange_end"]
    assert [
        (line["category"], line["description"], line["amount"]["amount_minor"])
        for line in details["budget_lines"]
    ] == [
        ("travel", "Flights Kisumu to Roanoke for six engineers", 1_800_000),
        ("lodging", "Host families, one month", 700_000),
    ]
    assert details["matching_cash"] == {"amount_minor": 500_000, "currency": "USD"}
    assert details["matching_in_kind"] == {"amount_minor": 300_000, "currency": "USD"}


async def test_a_submitted_review_publishes_its_scores_and_weighted_total(
    review: ReviewHarness,
) -> None:
    await with_panel(review)
    await review.deliver(request_reviews())
    task_id = await open_task_of(review, "expert-a")
    response = await review.client.post(
        f"/v1/tasks/{task_id}/review", json=review_body(), headers=review.as_reviewer("expert-a")
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "completed"
    # relevance 5/5 x3, feasibility (4-1)/(5-1) x2, impact 8/10 x1 = 5.3 of 6
    assert response.json()["review"]["weighted_total_bp"] == 8833
    [event] = await review.outbox("grants.review.completed.v1")
    assert event.event_type == "ReviewCompleted"
    assert event.application_id == "app-1"
    assert event.subject == "review:app-1:1"  # an answer to the round's requests
    assert event.payload["weighted_total_bp"] == 8833
    assert event.payload["scores"] == [
        {"criterion": "relevance", "score": 5},
        {"criterion": "feasibility", "score": 4},
        {"criterion": "impact", "score": 8},
    ]
    assert (event.payload["recommendation"], event.payload["task_id"]) == (
        "approve",
        task_id,
    )
    queue = await review.client.get("/v1/tasks", headers=review.as_reviewer("expert-a"))
    assert queue.json() == []


async def test_a_second_submission_is_a_conflict(review: ReviewHarness) -> None:
    await with_panel(review)
    await review.deliver(request_reviews())
    task_id = await open_task_of(review, "expert-a")
    headers = review.as_reviewer("expert-a")
    first = await review.client.post(
        f"/v1/tasks/{task_id}/review", json=review_body(), headers=headers
    )
    assert first.status_code == 201
    second = await review.client.post(
        f"/v1/tasks/{task_id}/review", json=review_body(recommendation="decline"), headers=headers
    )
    assert second.status_code == 409
    assert "already submitted" in second.json()["detail"]
    assert len(await review.outbox("grants.review.completed.v1")) == 1


# A review the task's rubric or kind refuses is a 409: the request alone is well-formed, only
# the stored task says it is not (its schema cannot); a malformed review is a 422.
@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        (
            review_body(scores={"relevance": 6, "feasibility": 4, "impact": 8}),
            ["body", "scores", "relevance"],
            "from 0 to 5, not 6",
        ),
        (
            review_body(scores={"relevance": 5, "feasibility": 0, "impact": 8}),
            ["body", "scores", "feasibility"],
            "from 1 to 5",
        ),
        (
            review_body(scores={"relevance": 5, "impact": 8}),
            ["body", "scores", "feasibility"],
            "not scored",
        ),
        (
            review_body(scores={"relevance": 5, "feasibility": 4, "impact": 8, "charm": 1}),
            ["body", "scores", "charm"],
            "not a criterion",
        ),
        (review_body(attest_no_conflict=False), ["body", "attest_no_conflict"], "attest"),
        (
            {k: v for k, v in review_body().items() if k != "attest_no_conflict"},
            ["body", "attest_no_conflict"],
            "attest_no_conflict is required",
        ),
        (
            review_body(recommendation="changes_requested"),
            ["body", "recommendation"],
            "approve, decline, revise",
        ),
        (
            review_body(recommendation="maybe"),
            ["body", "recommendation"],
            "recommendation must be one of: 'approve', 'decline', 'revise'",
        ),
        (
            review_body(scores={"relevance": "5", "feasibility": 4, "impact": 8}),
            ["body", "scores", "relevance"],
            "scores.relevance must be a whole number",
        ),
        (review_body(grade="A"), ["body", "grade"], "grade is not something you can set here"),
    ],
    ids=[
        "score-above-range",
        "score-below-range",
        "criterion-missing",
        "unknown-criterion",
        "attestation-false",
        "attestation-missing",
        "report-outcome-on-application",
        "unknown-recommendation",
        "score-as-text",
        "unknown-field",
    ],
)
async def test_an_invalid_review_is_refused_naming_the_field_and_changes_nothing(
    review: ReviewHarness,
    body: dict[str, object],
    loc: list[str],
    words: str,
    request: pytest.FixtureRequest,
) -> None:
    await with_panel(review)
    await review.deliver(request_reviews())
    task_id = await open_task_of(review, "expert-a")
    response = await review.client.post(
        f"/v1/tasks/{task_id}/review", json=body, headers=review.as_reviewer("expert-a")
    )
    against_the_task = request.node.callspec.id in {
        "score-above-range",
        "score-below-range",
        "criterion-missing",
        "unknown-criterion",
        "report-outcome-on-application",
    }
    assert response.status_code == (409 if against_the_task else 422), response.text
    problems = response.json()["detail"]
    field = ".".join(loc[1:])
    assert any(p["loc"] == loc and p["field"] == field and words in p["msg"] for p in problems), (
        problems
    )
    assert await review.outbox("grants.review.completed.v1") == []
    assert await open_task_of(review, "expert-a") == task_id


async def test_a_conflict_declared_after_assignment_takes_the_task_away_and_reassigns_it(
    review: ReviewHarness,
) -> None:
    await with_panel(review)
    await review.deliver(request_reviews())
    task_id = await open_task_of(review, "expert-a")
    expert = review.as_reviewer("expert-a")
    assert (await review.client.get(f"/v1/tasks/{task_id}", headers=expert)).status_code == 200
    declared = await review.client.patch(
        "/v1/reviewers/expert-a",
        json={"conflicts": {"members": ["member-kisumu"], "cities": []}},
        headers=review.as_officer(),
    )
    assert declared.status_code == 200, declared.text
    # Taken away: recorded as a recusal, and the slot went to the next eligible reviewer.
    [event] = await review.outbox("grants.review.recused.v1")
    assert (event.payload["task_id"], event.payload["reviewer_id"]) == (task_id, "expert-a")
    assert "declared after assignment" in event.payload["reason"]
    assert event.payload["replacement_task_id"] == await open_task_of(review, "generalist")
    # And the reviewer never sees the application again: not in its queue, not by id.
    assert (await review.client.get(f"/v1/tasks/{task_id}", headers=expert)).status_code == 404
    queue = await review.client.get("/v1/tasks?status=all", headers=expert)
    assert task_id not in {task["task_id"] for task in queue.json()}
    submitted = await review.client.post(
        f"/v1/tasks/{task_id}/review",
        json=review_body(),
        headers=expert,
    )
    assert submitted.status_code == 404


async def test_recusal_records_the_conflict_and_hands_the_task_to_someone_else(
    review: ReviewHarness,
) -> None:
    await with_panel(review)
    await review.deliver(request_reviews())
    task_id = await open_task_of(review, "expert-a")
    short_reason = await review.client.post(
        f"/v1/tasks/{task_id}/recuse", json={"reason": ""}, headers=review.as_reviewer("expert-a")
    )
    assert short_reason.status_code == 422
    response = await review.client.post(
        f"/v1/tasks/{task_id}/recuse",
        json={"reason": "I advised Roanoke on this bid"},
        headers=review.as_reviewer("expert-a"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["task"]["status"] == "recused"
    assert response.json()["replacement_assigned"] is True
    replacement = await open_task_of(review, "generalist")
    [event] = await review.outbox("grants.review.recused.v1")
    assert event.payload["replacement_task_id"] == replacement
    assert event.payload["reviewer_id"] == "expert-a"
    profile = (
        await review.client.get("/v1/reviewers/expert-a", headers=review.as_officer())
    ).json()
    assert profile["recusals"][0]["application_id"] == "app-1"
    again = await review.client.post(
        f"/v1/tasks/{task_id}/recuse",
        json={"reason": "twice"},
        headers=review.as_reviewer("expert-a"),
    )
    # The reviewer never sees that application again, not even the task it left.
    assert again.status_code == 404
    seen = await review.client.get(f"/v1/tasks/{task_id}", headers=review.as_reviewer("expert-a"))
    assert seen.status_code == 404
    # A later round (after a revision) never goes back to the reviewer who recused.
    await review.deliver(request_reviews(round=2, reviews_needed=3))
    round_two = {t.reviewer_id for t in await review.tasks("app-1") if t.round == 2}
    assert round_two == {"expert-b", "generalist"}


async def test_a_recusal_nobody_can_take_over_is_reported_and_staffed_when_asked_again(
    review: ReviewHarness,
) -> None:
    await review.add_reviewers(reviewer("only-a", "Asheville"), reviewer("only-b", "Boise"))
    await review.deliver(request_reviews(reviews_needed=2))
    task_id = await open_task_of(review, "only-a")
    response = await review.client.post(
        f"/v1/tasks/{task_id}/recuse",
        json={"reason": "my sister runs the Kisumu NGO"},
        headers=review.as_reviewer("only-a"),
    )
    assert response.json()["replacement_assigned"] is False
    [recused] = await review.outbox("grants.review.recused.v1")
    assert recused.payload["replacement_task_id"] is None
    [short] = await review.outbox("grants.review.reviewers_short.v1")
    assert (short.payload["needed"], short.payload["assigned"]) == (2, 1)
    assert recused.subject == short.subject == "review:app-1:1"
    # The workflow asks for the recused task to be reassigned once an officer found someone.
    await review.add_reviewers(reviewer("late-joiner", "Chico"))
    await review.deliver(reassign(task_id=task_id))
    [replacement] = [t for t in await review.tasks("app-1") if t.reviewer_id == "late-joiner"]
    assert (replacement.status, replacement.replaces_task_id) == (TaskStatus.OPEN, task_id)


async def test_a_late_reviewer_loses_the_task_and_cannot_submit_it(review: ReviewHarness) -> None:
    await with_panel(review)
    await review.add_reviewers(reviewer("standby", "Fargo"))
    await review.deliver(request_reviews())
    late_task = await open_task_of(review, "expert-a")
    await review.client.post(
        f"/v1/tasks/{await open_task_of(review, 'expert-b')}/review",
        json=review_body(),
        headers=review.as_reviewer("expert-b"),
    )
    await review.relay_everything()
    [completed] = await review.outbox("grants.review.completed.v1")
    review.clock.advance(timedelta(days=15))
    command = reassign()
    await review.deliver(command)
    await review.deliver(command)  # re-sent: moves nothing more
    # The workflow asked because it lacked reviews: the one that is in goes out again.
    assert await review.outbox("grants.review.completed.v1") == [replace(completed, sent=False)]
    tasks = await review.tasks("app-1")
    assert sorted((t.reviewer_id, t.status.value) for t in tasks) == [
        ("expert-a", "reassigned"),
        ("expert-b", "completed"),
        ("standby", "open"),
    ]
    [replacement] = [t for t in tasks if t.status is TaskStatus.OPEN]
    assert replacement.replaces_task_id == late_task
    assert replacement.due_at == review.clock.now + timedelta(days=14)
    late = await review.client.post(
        f"/v1/tasks/{late_task}/review", json=review_body(), headers=review.as_reviewer("expert-a")
    )
    assert late.status_code == 409
    assert "reassigned" in late.json()["detail"]
    mail = await review.queued_mail()
    assert any(
        m.recipients == ["expert-a@reviewers.example.org"] and "reassigned" in m.subject
        for m in mail
    )


async def test_a_report_review_uses_the_report_rubric_and_outcomes(review: ReviewHarness) -> None:
    await with_panel(review)
    await review.deliver(request_reviews())
    command = report_review()
    await review.deliver(command)
    await review.deliver(report_review())  # re-sent
    [task] = [t for t in await review.tasks("app-1") if t.report_id == "report-1"]
    headers = review.as_reviewer(task.reviewer_id)
    detail = (await review.client.get(f"/v1/tasks/{task.id}", headers=headers)).json()
    assert detail["kind"] == "report"
    assert [c["name"] for c in detail["rubric"]["criteria"]] == [
        "completeness",
        "outcomes_achieved",
        "spending_matches_budget",
    ]
    assert detail["recommendations"] == ["approve", "changes_requested"]
    scores = {"completeness": 4, "outcomes_achieved": 3, "spending_matches_budget": 2}
    declined = await review.client.post(
        f"/v1/tasks/{task.id}/review",
        json=review_body(scores=scores, recommendation="decline"),
        headers=headers,
    )
    assert declined.status_code == 409, declined.text
    response = await review.client.post(
        f"/v1/tasks/{task.id}/review",
        json=review_body(scores=scores, recommendation="changes_requested", comments="Receipts?"),
        headers=headers,
    )
    assert response.status_code == 201, response.text
    [event] = await review.outbox("grants.report.reviewed.v1")
    assert event.subject == "report-review:app-1:report-1"
    assert event.payload == {
        "application_id": "app-1",
        "report_id": "report-1",
        "reviewer_id": task.reviewer_id,
        "outcome": "changes_requested",
        "comments": "Receipts?",
    }
    assert await review.outbox("grants.review.completed.v1") == []


async def test_officers_reassign_by_hand_and_see_workload_and_score_spread(
    review: ReviewHarness,
) -> None:
    await with_panel(review)
    await review.deliver(request_reviews(reviews_needed=3))
    generalist_task = await open_task_of(review, "generalist")
    refused = await review.client.post(
        f"/v1/officer/tasks/{generalist_task}/reassign",
        json={"reason": "needs an expert", "reviewer_id": "local"},
        headers=review.as_officer(),
    )
    assert refused.status_code == 409
    assert "home city" in refused.json()["detail"]
    await review.add_reviewers(reviewer("expert-c", "Galena"))
    moved = await review.client.post(
        f"/v1/officer/tasks/{generalist_task}/reassign",
        json={"reason": "needs an expert", "reviewer_id": "expert-c"},
        headers=review.as_officer(),
    )
    assert moved.status_code == 201, moved.text
    assert (moved.json()["reviewer_id"], moved.json()["replaces_task_id"]) == (
        "expert-c",
        generalist_task,
    )
    review.clock.advance(timedelta(hours=6))
    for reviewer_id, relevance in (("expert-a", 5), ("expert-b", 0), ("expert-c", 4)):
        response = await review.client.post(
            f"/v1/tasks/{await open_task_of(review, reviewer_id)}/review",
            json=review_body(scores={"relevance": relevance, "feasibility": 4, "impact": 8}),
            headers=review.as_reviewer(reviewer_id),
        )
        assert response.status_code == 201
    scores = (
        await review.client.get(
            "/v1/officer/applications/app-1/scores", headers=review.as_officer()
        )
    ).json()
    [round_one] = scores["rounds"]
    assert sorted(r["reviewer_id"] for r in round_one["reviews"]) == [
        "expert-a",
        "expert-b",
        "expert-c",
    ]
    assert round_one["spread_bp"] == 8833 - 3833
    assert round_one["criterion_spread"]["relevance"] == 5
    assert round_one["flagged"] is True
    workload = {
        line["reviewer_id"]: line
        for line in (
            await review.client.get("/v1/officer/workload", headers=review.as_officer())
        ).json()
    }
    assert workload["expert-a"]["completed"] == 1
    assert workload["expert-a"]["mean_turnaround_seconds"] == 6 * 3600
    assert workload["generalist"]["taken_away"] == 1
    assert workload["local"]["open"] == 0
    every_task = (
        await review.client.get(
            "/v1/officer/tasks", params={"status": "completed"}, headers=review.as_officer()
        )
    ).json()
    assert len(every_task) == 3


async def test_reviewers_are_managed_by_officers_with_validation(review: ReviewHarness) -> None:
    await review.add_reviewers(reviewer("r-1"))
    officer = review.as_officer()
    duplicate = await review.client.post(
        "/v1/reviewers", json=reviewer("r-1").model_dump(mode="json"), headers=officer
    )
    assert duplicate.status_code == 409
    bad = await review.client.post(
        "/v1/reviewers",
        json={**reviewer("r-2").model_dump(mode="json"), "email": "nope", "nickname": "x"},
        headers=officer,
    )
    assert bad.status_code == 422
    assert {tuple(p["loc"]) for p in bad.json()["detail"]} == {
        ("body", "email"),
        ("body", "nickname"),
    }
    patched = await review.client.patch(
        "/v1/reviewers/r-1",
        json={"capacity": 9, "active": False, "conflicts": {"cities": ["Kisumu"]}},
        headers=officer,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["capacity"], body["active"], body["conflicts"]["cities"]) == (9, False, ["Kisumu"])
    assert body["expertise"]["programs"] == ["AUPAP"]
    inactive = await review.client.get("/v1/reviewers", params={"active": False}, headers=officer)
    assert [r["id"] for r in inactive.json()] == ["r-1"]


async def test_reviewers_and_their_workload_come_in_pages(review: ReviewHarness) -> None:
    await with_panel(review)
    await review.deliver(request_reviews())
    officer = review.as_officer()
    everyone = ["conflicted", "expert-a", "expert-b", "generalist", "local"]
    for route in ("/v1/reviewers", "/v1/officer/workload"):
        key = "id" if route == "/v1/reviewers" else "reviewer_id"
        pages = [
            (
                await review.client.get(route, params={"limit": 2, "offset": at}, headers=officer)
            ).json()
            for at in (0, 2, 4, 6)
        ]
        assert [[line[key] for line in page] for page in pages] == [
            everyone[0:2],
            everyone[2:4],
            everyone[4:],
            [],
        ], route
    # A page of the workload counts each reviewer's own tasks, as the whole list does.
    whole = (await review.client.get("/v1/officer/workload", headers=officer)).json()
    page = (
        await review.client.get("/v1/officer/workload?limit=2&offset=1", headers=officer)
    ).json()
    assert page == whole[1:3]
    requests = "/v1/officer/applications/app-1/requests"
    first = (await review.client.get(requests, params={"limit": 1}, headers=officer)).json()
    assert len(first) == 1
    past = await review.client.get(requests, params={"offset": 1}, headers=officer)
    assert (past.status_code, past.json()) == (200, [])
    too_many = await review.client.get("/v1/reviewers?limit=501", headers=officer)
    assert too_many.status_code == 422


async def test_reviewers_are_reminded_once_before_a_task_is_due(review: ReviewHarness) -> None:
    await with_panel(review)
    await review.deliver(request_reviews(reviews_needed=1))
    assert await review.remind() == 0
    review.clock.advance(timedelta(days=12, hours=1))
    assert [await review.remind() for _ in range(2)] == [1, 0]
    reminders = [m for m in await review.queued_mail() if m.subject.startswith("Reminder")]
    assert len(reminders) == 1
    assert reminders[0].recipients == ["expert-a@reviewers.example.org"]


async def test_queued_mail_is_delivered_by_the_shared_mailer(
    review: ReviewHarness, tmp_path: Path
) -> None:
    await with_panel(review)
    await review.deliver(request_reviews(reviews_needed=1))
    mailer = FileMailer(tmp_path / "outgoing")
    assert await review.send_mail(mailer) == 1
    assert await review.send_mail(mailer) == 0
    [path] = mailer.sent()
    message = email.message_from_bytes(path.read_bytes())
    assert message["To"] == "expert-a@reviewers.example.org"
    assert message["X-Grantflow-Application"] == "app-1"
    assert message["Subject"].startswith("New review task")


async def test_demo_reviewers_are_seeded_once(review: ReviewHarness) -> None:
    async with review.service.work() as work:
        added = await review.service.seed_demo_reviewers(work)
    async with review.service.work() as work:
        again = await review.service.seed_demo_reviewers(work)
    assert (added, again) == (8, 0)
    listed = (await review.client.get("/v1/reviewers", headers=review.as_officer())).json()
    assert "demo-reviewer-1" in {r["id"] for r in listed}
    assert len({r["home_city"] for r in listed}) == 8


# ---------------------------------------------------------------- object-level authorization

REVIEWER_ROUTES = [
    ("GET", "/v1/tasks/{task}", None),
    ("POST", "/v1/tasks/{task}/review", review_body()),
    ("POST", "/v1/tasks/{task}/recuse", {"reason": "conflict"}),
]
OFFICER_ROUTES = [
    ("GET", "/v1/reviewers/{reviewer}", None),
    ("PATCH", "/v1/reviewers/{reviewer}", {"capacity": 2}),
    ("GET", "/v1/officer/tasks/{task}", None),
    ("POST", "/v1/officer/tasks/{task}/reassign", {"reason": "by hand"}),
    ("GET", "/v1/officer/applications/{application}/scores", None),
    ("GET", "/v1/officer/applications/{application}/requests", None),
    ("POST", "/v1/officer/requests/{request}/assign", {}),
]


async def ids_of_one_task(review: ReviewHarness) -> dict[str, str]:
    await with_panel(review)
    await review.deliver(request_reviews())
    [task, *_] = await review.tasks("app-1")
    return {
        "task": task.id,
        "reviewer": task.reviewer_id,
        "application": "app-1",
        "request": task.request_id,
        "owner": task.reviewer_id,
    }


@pytest.mark.parametrize(("method", "path", "body"), REVIEWER_ROUTES)
async def test_a_reviewer_acts_only_on_its_own_tasks(
    review: ReviewHarness, method: str, path: str, body: object
) -> None:
    ids = await ids_of_one_task(review)
    url = path.format(**ids)
    stranger = await review.client.request(
        method, url, json=body, headers=review.as_reviewer("conflicted")
    )
    assert stranger.status_code == 404, stranger.text
    missing = await review.client.request(
        method,
        path.format(task="no-such-task"),
        json=body,
        headers=review.as_reviewer(ids["owner"]),
    )
    assert missing.status_code == 404
    assert stranger.json() == missing.json()  # another's task looks exactly like none
    for headers, expected in (
        (review.as_applicant(), 403),
        (review.as_officer(), 403),
        ({}, 401),
    ):
        response = await review.client.request(method, url, json=body, headers=headers)
        assert response.status_code == expected, (headers, response.text)
    assert await review.outbox() == []
    assert ids["task"] == await open_task_of(review, ids["owner"])
    owner = await review.client.request(
        method, url, json=body, headers=review.as_reviewer(ids["owner"])
    )
    assert owner.status_code in (200, 201), owner.text


@pytest.mark.parametrize(("method", "path", "body"), OFFICER_ROUTES)
async def test_officer_routes_refuse_reviewers_and_applicants_and_404_unknown_ids(
    review: ReviewHarness, method: str, path: str, body: object
) -> None:
    ids = await ids_of_one_task(review)
    url = path.format(**ids)
    for headers, expected in (
        (review.as_reviewer(ids["owner"]), 403),
        (review.as_applicant(), 403),
        ({}, 401),
    ):
        response = await review.client.request(method, url, json=body, headers=headers)
        assert response.status_code == expected, (headers, response.text)
    unknown = path.format(task="nope", reviewer="nope", application="nope", request="nope")
    response = await review.client.request(method, unknown, json=body, headers=review.as_officer())
    assert response.status_code == 404, response.text


async def test_an_id_with_control_characters_is_a_422_not_a_database_error(
    review: ReviewHarness,
) -> None:
    response = await review.client.get("/v1/tasks/a%00b", headers=review.as_reviewer("r-1"))
    assert response.status_code == 422
    # Refused before any route (shared.http.JsonGuard): the path holds a NUL character.
    assert response.json()["detail"][0]["loc"] == ["path"]
    response = await review.client.get(
        "/v1/officer/tasks", params={"program_code": "A\x00"}, headers=review.as_officer()
    )
    assert response.status_code == 422


async def test_an_applicant_token_cannot_read_a_queue(review: ReviewHarness) -> None:
    response = await review.client.get("/v1/tasks", headers=review.as_applicant())
    assert response.status_code == 403
    assert (await review.client.get("/v1/tasks")).status_code == 401


async def report_in_task(review: ReviewHarness, task_id: str, reviewer_id: str) -> Any:
    headers = review.as_reviewer(reviewer_id)
    detail = (await review.client.get(f"/v1/tasks/{task_id}", headers=headers)).json()
    return detail["application"]["report"]


async def test_a_report_review_shows_the_report_whichever_of_the_two_arrives_first(
    review: ReviewHarness,
) -> None:
    await with_panel(review)
    for application_id in ("app-1", "app-2"):
        await review.deliver(request_reviews(application_id))
    # app-1: the report is published before the workflow asks for its review.
    await review.deliver(report_submitted("app-1", report_id="r-1"))
    await review.deliver(report_review("app-1", report_id="r-1"))
    # app-2: the other way round; and reporting's event is delivered twice.
    await review.deliver(report_review("app-2", report_id="r-2"))
    [waiting] = [t for t in await review.tasks("app-2") if t.report_id == "r-2"]
    assert await report_in_task(review, waiting.id, waiting.reviewer_id) is None
    for _ in range(2):
        await review.deliver(report_submitted("app-2", report_id="r-2"))

    for application_id, report_id in (("app-1", "r-1"), ("app-2", "r-2")):
        [task] = [t for t in await review.tasks(application_id) if t.report_id == report_id]
        report = await report_in_task(review, task.id, task.reviewer_id)
        assert report["report_id"] == report_id
        assert report["revision"] == 1
        assert report["content"]["lessons_learned"] == "Book flights early."
        assert report["content"]["activities"][0]["title"] == "Trade mission"
        assert report["actual_spending"] == {"amount_minor": 750_000, "currency": "USD"}


async def test_a_revised_report_reaches_the_next_review_and_a_done_review_keeps_its_revision(
    review: ReviewHarness,
) -> None:
    await with_panel(review)
    await review.deliver(request_reviews())
    await review.deliver(report_submitted(lessons_learned="First draft."))
    await review.deliver(report_review())
    [first] = [t for t in await review.tasks("app-1") if t.report_id == "report-1"]
    scores = {"completeness": 2, "outcomes_achieved": 3, "spending_matches_budget": 2}
    changes = await review.client.post(
        f"/v1/tasks/{first.id}/review",
        json=review_body(scores=scores, recommendation="changes_requested"),
        headers=review.as_reviewer(first.reviewer_id),
    )
    assert changes.status_code == 201, changes.text

    revised = report_submitted(revision=2, lessons_learned="With the receipts.")
    await review.deliver(revised)
    again = report_review(command_id="application-app-1:report-review:report-1:2")
    await review.deliver(again)

    kept = await report_in_task(review, first.id, first.reviewer_id)
    assert (kept["revision"], kept["content"]["lessons_learned"]) == (1, "First draft.")
    [second] = [
        t for t in await review.tasks("app-1") if t.report_id == "report-1" and t.id != first.id
    ]
    shown = await report_in_task(review, second.id, second.reviewer_id)
    assert (shown["revision"], shown["content"]["lessons_learned"]) == (2, "With the receipts.")
