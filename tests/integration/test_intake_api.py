"""The intake API on SQLite and PostgreSQL: drafts, submission rules, idempotency, read models."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any

from services.intake.catalog import Catalog
from shared.contracts.envelope import new_envelope
from shared.contracts.money import Money
from shared.contracts.reporting import MemberStandingChanged
from shared.contracts.topics import (
    AMENDMENT_REQUESTED,
    APPLICATION_RESUBMITTED,
    APPLICATION_SUBMITTED,
    APPLICATION_WITHDRAWN,
    PARTNER_CONFIRMED,
)
from shared.contracts.workflows import ReminderDue
from tests.support.intake import (
    OTHER_PROGRAM,
    TODAY,
    RunningIntake,
    draft,
    link_path,
    partner_request,
    resent,
    subject,
    usd,
)


def fields(response: Any) -> list[str]:
    """The fields a malformed request got wrong (422)."""
    assert response.status_code == 422, response.text
    return [problem["field"] for problem in response.json()["detail"]]


def broken_rules(response: Any) -> list[str]:
    """The fields at fault when what is stored (a draft, the catalog) breaks a rule (409)."""
    assert response.status_code == 409, response.text
    return [problem["field"] for problem in response.json()["detail"]]


def words(response: Any) -> str:
    return " | ".join(problem["msg"] for problem in response.json()["detail"])


async def test_programs_list_their_rules_and_whether_the_window_is_open(
    svc: RunningIntake,
) -> None:
    member = await svc.new_member()
    response = await svc.client.get("/v1/programs", headers=svc.applicant(member))
    assert response.status_code == 200
    listing = response.json()
    assert listing["catalog_version"] == "2027.2"
    programs = {program["code"]: program for program in listing["programs"]}
    assert list(programs) == ["AUPAP", "YAP-TNA", "LEADING-ASIA", "SINO-AFRICAN", "CITIZEN"]
    assert all(program["window_open"] for program in programs.values())
    aupap = programs["AUPAP"]["rules"]
    assert aupap["max_award"] == {"amount_minor": 2_500_000, "currency": "USD"}
    assert (aupap["application_opens"], aupap["application_closes"]) == ("2026-10-01", "2027-03-31")
    assert aupap["review_period"] == "P30D"
    one = await svc.client.get("/v1/programs/YAP-TNA", headers=svc.applicant(member))
    assert one.json()["rules"]["youth_program"] is True
    missing = await svc.client.get("/v1/programs/NOPE", headers=svc.applicant(member))
    assert missing.status_code == 404


async def test_applicant_drafts_previews_and_submits_with_the_rules_snapshot_in_the_event(
    svc: RunningIntake,
) -> None:
    member = await svc.new_member()
    application_id = await svc.new_draft(member, summary="First version")
    edited = await svc.client.patch(
        f"/v1/applications/{application_id}",
        json={"summary": "Water utilities plan three kiosks together."},
        headers=svc.applicant(member),
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["draft_version"] == 2
    assert edited.json()["fields"]["title"] == "Clean water kiosks with Nairobi"  # kept

    checks = await svc.client.get(
        f"/v1/applications/{application_id}/checks", headers=svc.applicant(member)
    )
    assert checks.json() == {
        "ready": True,
        "problems": [],
        "budget_total": {"amount_minor": 1_508_000, "currency": "USD"},
        "expected_request": {"amount_minor": 1_100_000, "currency": "USD"},
        "rates_used": {"USD": "1", "KES": "0.0077"},
    }
    submitted = await svc.client.post(
        f"/v1/applications/{application_id}/submit",
        json={"draft_version": 2},
        headers=svc.applicant(member),
    )
    assert submitted.status_code == 202, submitted.text
    view = submitted.json()
    assert view["status"] == "submitted"
    assert view["submitted"]["catalog_version"] == "2027.2"
    assert view["submitted"]["rates_used"]["KES"] == "0.0077"
    assert [entry["kind"] for entry in view["requests"]] == ["submitted"]

    [event] = await svc.outbox(APPLICATION_SUBMITTED, application_id)
    payload = event["payload"]
    assert event["event_type"] == "ApplicationSubmitted" and event["producer"] == "intake"
    assert payload["member_id"] == member and payload["cycle"] == "2027"
    assert payload["rules"]["code"] == "AUPAP"
    assert payload["rules"]["catalog_version"] == "2027.2"
    assert payload["requested"] == {"amount_minor": 1_100_000, "currency": "USD"}
    kes = payload["budget_lines"][1]
    assert kes["amount"] == {"amount_minor": 40_000_000, "currency": "KES"}
    assert kes["converted"] == {"amount_minor": 308_000, "currency": "USD"}
    assert kes["fx_rate"] == "0.0077"

    again = await svc.client.patch(
        f"/v1/applications/{application_id}",
        json={"title": "Changed"},
        headers=svc.applicant(member),
    )
    assert again.status_code == 409


async def test_a_draft_may_be_incomplete_and_submission_names_each_missing_field(
    svc: RunningIntake,
) -> None:
    member = await svc.new_member()
    created = await svc.client.post(
        "/v1/applications", json={"title": "An idea"}, headers=svc.applicant(member)
    )
    assert created.status_code == 201, created.text
    application_id = created.json()["application_id"]
    # The member's contacts are the draft's until the applicant names others.
    assert created.json()["fields"]["contacts"][0]["email"].startswith(member)
    refused = await svc.client.post(
        f"/v1/applications/{application_id}/submit", headers=svc.applicant(member)
    )
    assert {"program_code", "partner", "budget_lines", "requested", "exchange_start"} <= set(
        broken_rules(refused)
    )
    assert "the exchange start date is required" in words(refused)
    assert await svc.outbox(APPLICATION_SUBMITTED, application_id) == []


async def test_each_broken_rule_is_a_409_naming_the_field_in_plain_words(
    svc: RunningIntake,
) -> None:
    member = await svc.new_member()
    partner = {**draft()["partner"], "name": "Lyon", "country": "FR"}
    application_id = await svc.new_draft(member, partner=partner, requested=usd(11_001))
    refused = await svc.client.post(
        f"/v1/applications/{application_id}/submit", headers=svc.applicant(member)
    )
    assert broken_rules(refused) == ["partner.country", "requested"]
    assert "partners in FR are not eligible for AUPAP" in words(refused)
    assert "must equal the budget total (15,080.00 USD) minus matching funds" in words(refused)
    view = await svc.client.get(f"/v1/applications/{application_id}", headers=svc.applicant(member))
    assert view.json()["status"] == "draft"


async def test_a_lapsed_member_or_one_with_an_overdue_report_cannot_submit(
    svc: RunningIntake,
) -> None:
    lapsed = await svc.new_member(membership_active=False)
    refused = await svc.client.post(
        f"/v1/applications/{await svc.new_draft(lapsed)}/submit", headers=svc.applicant(lapsed)
    )
    assert broken_rules(refused) == ["member"]
    assert "membership is not active" in words(refused)

    overdue = await svc.new_member()
    application_id = await svc.new_draft(overdue)
    event = new_envelope(
        MemberStandingChanged(
            member_id=overdue, good_standing=False, reason="report_overdue", as_of=TODAY.date()
        ),
        producer="reporting",
        application_id="other-application",
    )
    await svc.handle(svc.service.apply_member_standing, event)
    refused = await svc.client.post(
        f"/v1/applications/{application_id}/submit", headers=svc.applicant(overdue)
    )
    assert broken_rules(refused) == ["member"]
    assert "a report from an earlier grant is overdue" in words(refused)
    member = await svc.client.get(f"/v1/members/{overdue}", headers=svc.applicant(overdue))
    assert member.json()["good_standing"] is False

    # An older standing event arriving late changes nothing.
    older = new_envelope(
        MemberStandingChanged(
            member_id=overdue, good_standing=True, reason="restored", as_of=TODAY.date()
        ),
        producer="reporting",
        application_id="other-application",
        occurred_at=event.occurred_at - timedelta(minutes=5),
    )
    await svc.handle(svc.service.apply_member_standing, older)
    member = await svc.client.get(f"/v1/members/{overdue}", headers=svc.applicant(overdue))
    assert member.json()["good_standing"] is False


async def test_one_open_application_per_member_program_and_cycle(svc: RunningIntake) -> None:
    member = await svc.new_member()
    first = await svc.submitted(member)
    second = await svc.new_draft(member, title="Second try")
    checks = await svc.client.get(
        f"/v1/applications/{second}/checks", headers=svc.applicant(member)
    )
    assert checks.json()["ready"] is False
    assert f"already has an open application ({first})" in checks.json()["problems"][0]["message"]
    refused = await svc.client.post(
        f"/v1/applications/{second}/submit", headers=svc.applicant(member)
    )
    assert refused.status_code == 409
    # Another program is fine.
    other_program = await svc.new_draft(member, **OTHER_PROGRAM)
    accepted = await svc.client.post(
        f"/v1/applications/{other_program}/submit", headers=svc.applicant(member)
    )
    assert accepted.status_code == 202, accepted.text
    # Once the first is declined, the cycle's slot is free again.
    await svc.feed_status(first, "declined", 1, previous="decision")
    accepted = await svc.client.post(
        f"/v1/applications/{second}/submit", headers=svc.applicant(member)
    )
    assert accepted.status_code == 202, accepted.text


async def test_submitting_twice_with_one_idempotency_key_gives_one_event(
    svc: RunningIntake,
) -> None:
    member = await svc.new_member()
    application_id = await svc.new_draft(member)
    url = f"/v1/applications/{application_id}/submit"
    key = {"Idempotency-Key": f"submit-{uuid.uuid4()}", **svc.applicant(member)}
    first, second = await asyncio.gather(
        svc.client.post(url, json={"draft_version": 1}, headers=key),
        svc.client.post(url, json={"draft_version": 1}, headers=key),
    )
    assert (first.status_code, second.status_code) == (202, 202), (first.text, second.text)
    assert first.json() == second.json()
    third = await svc.client.post(url, json={"draft_version": 1}, headers=key)
    assert third.status_code == 202 and third.headers["Idempotent-Replayed"] == "true"
    assert len(await svc.outbox(APPLICATION_SUBMITTED, application_id)) == 1

    different_body = await svc.client.post(url, json={}, headers=key)
    assert different_body.status_code == 409
    assert "different request" in different_body.json()["detail"]
    other = await svc.new_draft(member, program_code="CITIZEN", **citizen_money())
    same_key_other_application = await svc.client.post(
        f"/v1/applications/{other}/submit", json={"draft_version": 1}, headers=key
    )
    assert same_key_other_application.status_code == 409
    assert "another request" in same_key_other_application.json()["detail"]
    other_view = await svc.client.get(f"/v1/applications/{other}", headers=svc.applicant(member))
    assert other_view.json()["status"] == "draft"  # the refused submission changed nothing
    without_key = await svc.client.post(url, headers=svc.applicant(member))
    assert without_key.status_code == 409
    assert "already submitted" in without_key.json()["detail"]


def citizen_money() -> dict[str, Any]:
    return {"matching_cash": usd(6_540), "matching_in_kind": usd(1_000), "requested": usd(7_540)}


async def test_submitting_a_draft_that_changed_since_the_preview_is_409(
    svc: RunningIntake,
) -> None:
    member = await svc.new_member()
    application_id = await svc.new_draft(member)
    await svc.client.patch(
        f"/v1/applications/{application_id}", json={"title": "New"}, headers=svc.applicant(member)
    )
    stale = await svc.client.post(
        f"/v1/applications/{application_id}/submit",
        json={"draft_version": 1},
        headers=svc.applicant(member),
    )
    assert stale.status_code == 409
    assert "preview the checks again" in stale.json()["detail"]


async def test_mass_assignment_is_refused_and_nothing_changes(svc: RunningIntake) -> None:
    member = await svc.new_member()
    refused = await svc.client.post(
        "/v1/applications", json=draft(status="awarded"), headers=svc.applicant(member)
    )
    assert fields(refused) == ["status"]
    assert words(refused) == "status is not something you can set here"
    listing = await svc.client.get("/v1/applications", headers=svc.applicant(member))
    assert listing.json()["total"] == 0

    application_id = await svc.new_draft(member)
    for sneaky in ({"award": usd(25_000)}, {"score": 100}, {"title": "x", "status": "awarded"}):
        response = await svc.client.patch(
            f"/v1/applications/{application_id}", json=sneaky, headers=svc.applicant(member)
        )
        assert response.status_code == 422, sneaky
    submit = await svc.client.post(
        f"/v1/applications/{application_id}/submit",
        json={"status": "awarded"},
        headers=svc.applicant(member),
    )
    assert fields(submit) == ["status"]
    view = await svc.client.get(f"/v1/applications/{application_id}", headers=svc.applicant(member))
    assert (view.json()["draft_version"], view.json()["status"]) == (1, "draft")
    assert view.json()["fields"]["title"] == "Clean water kiosks with Nairobi"
    standing = await svc.client.patch(
        f"/v1/members/{member}", json={"good_standing": True}, headers=svc.officer()
    )
    assert fields(standing) == ["good_standing"]


async def test_a_value_of_another_json_type_is_refused_not_converted(svc: RunningIntake) -> None:
    member = await svc.new_member()
    for wrong in (
        {"exchange_start": 0},
        {"exchange_start": "20270510"},
        {"delegation": {"adults": True}},
        {"expected_outcomes": {"follow_up_projects": False}},
        {"delegation": {"adults": "6"}},
    ):
        refused = await svc.client.post(
            "/v1/applications", json=draft(**wrong), headers=svc.applicant(member)
        )
        assert refused.status_code == 422, (wrong, refused.text)
    refused = await svc.client.post(
        "/v1/applications", json=draft(exchange_start=0), headers=svc.applicant(member)
    )
    assert words(refused) == "exchange_start must be a date such as 2027-05-10"
    # 6.0 is the integer 6 in JSON, and a date is its ISO text.
    created = await svc.client.post(
        "/v1/applications",
        json=draft(delegation={"adults": 6.0, "youth": 0}, exchange_start="2027-05-10"),
        headers=svc.applicant(member),
    )
    assert created.status_code == 201, created.text
    assert created.json()["fields"]["delegation"] == {"adults": 6, "youth": 0}


async def test_a_program_the_catalog_does_not_have_is_a_409_naming_it(svc: RunningIntake) -> None:
    member = await svc.new_member()
    unknown = await svc.client.post(
        "/v1/applications", json=draft(program_code="NOPE"), headers=svc.applicant(member)
    )
    assert broken_rules(unknown) == ["program_code"]
    assert "there is no program 'NOPE'" in words(unknown)


async def test_programs_and_exchange_rates_come_in_pages(svc: RunningIntake) -> None:
    member = await svc.new_member()
    headers = svc.applicant(member)
    second = await svc.client.get("/v1/programs?limit=2&offset=1", headers=headers)
    assert second.status_code == 200, second.text
    page = second.json()
    assert [p["code"] for p in page["programs"]] == ["YAP-TNA", "LEADING-ASIA"]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)

    for pair in ("ZAR/USD", "EUR/USD", "GBP/USD"):
        saved = await svc.client.put(
            f"/v1/exchange-rates/{pair}", json={"rate": "1.25"}, headers=svc.officer()
        )
        assert saved.status_code == 200, saved.text
    everything = (await svc.client.get("/v1/exchange-rates", headers=headers)).json()
    assert everything["total"] >= 3
    assert len(everything["items"]) == everything["total"]
    pages = [
        (await svc.client.get(f"/v1/exchange-rates?limit=2&offset={at}", headers=headers)).json()
        for at in range(0, everything["total"], 2)
    ]
    assert [rate for page in pages for rate in page["items"]] == everything["items"]
    assert {len(page["items"]) for page in pages[:-1]} == {2}
    too_far = await svc.client.get("/v1/exchange-rates?limit=501", headers=headers)
    assert fields(too_far) == ["limit"]


async def test_money_is_whole_minor_units_and_never_a_float(svc: RunningIntake) -> None:
    member = await svc.new_member()
    half_cent = {"amount_minor": 12.5, "currency": "USD"}
    lines = [{"category": "travel", "description": "Flights", "amount": half_cent}]
    refused = await svc.client.post(
        "/v1/applications", json=draft(budget_lines=lines), headers=svc.applicant(member)
    )
    assert fields(refused) == ["budget_lines[0].amount.amount_minor"]
    assert words(refused) == "budget_lines[0].amount.amount_minor must be a whole number"
    bad_country = {**draft()["partner"], "country": "Kenya"}
    refused = await svc.client.post(
        "/v1/applications", json=draft(partner=bad_country), headers=svc.applicant(member)
    )
    assert words(refused) == "partner.country must be a two-letter country code such as KE"


async def test_a_body_over_256_kib_is_413_and_nothing_is_written(svc: RunningIntake) -> None:
    member = await svc.new_member()
    response = await svc.client.post(
        "/v1/applications",
        json=draft(summary="x" * (256 * 1024)),
        headers=svc.applicant(member),
    )
    assert response.status_code == 413
    listing = await svc.client.get("/v1/applications", headers=svc.applicant(member))
    assert listing.json()["total"] == 0


async def test_status_events_apply_by_sequence_and_older_ones_only_join_the_history(
    svc: RunningIntake,
) -> None:
    member = await svc.new_member()
    application_id = await svc.submitted(member)
    due = TODAY + timedelta(days=30)
    await svc.feed_status(
        application_id, "review", 3, previous="partner_confirmation", deadlines={"review": due}
    )
    await svc.feed_status(application_id, "screening", 1, previous="submitted")
    await svc.feed_status(application_id, "review", 3, previous="partner_confirmation")  # again
    view = (
        await svc.client.get(f"/v1/applications/{application_id}", headers=svc.applicant(member))
    ).json()
    assert view["status"] == "review"
    assert [(h["sequence"], h["stage"]) for h in view["history"]] == [
        (1, "screening"),
        (3, "review"),
    ]
    assert [d["name"] for d in view["deadlines"]] == ["review"]
    contact = f"{member}@springfield.example.org"
    mails = await svc.wait_for_mail(contact, count=2)  # received + review
    await asyncio.sleep(0.2)
    assert [subject(mail) for mail in svc.mails(contact)] == [
        "Application received: Clean water kiosks with Nairobi",
        "Clean water kiosks with Nairobi: review",
    ]
    assert "Deadlines ahead" in mails[1].get_content()


async def test_requests_for_action_and_reminders_email_the_contacts(svc: RunningIntake) -> None:
    member = await svc.new_member()
    application_id = await svc.submitted(member)
    await svc.feed_status(
        application_id,
        "revision_requested",
        4,
        previous="decision",
        action_required="Reduce the travel budget and resubmit",
    )
    reminder = new_envelope(
        ReminderDue(
            application_id=application_id,
            member_id=member,
            about="revision_due",
            due_at=TODAY + timedelta(days=14),
            message="Your revision is due in 7 days.",
        ),
        producer="workflows",
        application_id=application_id,
    )
    await svc.handle(svc.service.remind, reminder)
    mails = await svc.wait_for_mail(f"{member}@springfield.example.org", count=3)
    subjects = [subject(mail) for mail in mails]
    assert "Action required - Clean water kiosks with Nairobi: revision requested" in subjects
    assert any(subject.startswith("Reminder - Clean water kiosks") for subject in subjects)
    assert any("Reduce the travel budget" in mail.get_content() for mail in mails)


async def test_withdrawal_publishes_one_event_and_a_withdrawn_draft_publishes_none(
    svc: RunningIntake,
) -> None:
    member = await svc.new_member()
    application_id = await svc.submitted(member)
    url = f"/v1/applications/{application_id}/withdraw"
    body = {"reason": "The delegation cannot travel this year."}
    accepted = await svc.client.post(url, json=body, headers=svc.applicant(member))
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["withdrawal_requested_at"] is not None
    again = await svc.client.post(url, json=body, headers=svc.applicant(member))
    assert again.status_code == 409
    [event] = await svc.outbox(APPLICATION_WITHDRAWN, application_id)
    assert event["payload"]["reason"] == body["reason"]
    no_reason = await svc.client.post(url, json={}, headers=svc.applicant(member))
    assert fields(no_reason) == ["reason"]

    draft_id = await svc.new_draft(member)
    withdrawn = await svc.client.post(
        f"/v1/applications/{draft_id}/withdraw", json=body, headers=svc.applicant(member)
    )
    assert withdrawn.json()["status"] == "withdrawn"
    assert await svc.outbox(APPLICATION_WITHDRAWN, draft_id) == []


async def test_resubmission_is_possible_once_per_revision_request(svc: RunningIntake) -> None:
    member = await svc.new_member()
    application_id = await svc.submitted(member)
    url = f"/v1/applications/{application_id}/resubmit"
    body = {
        "summary": "Smaller delegation.",
        "requested": usd(9_080),
        "matching_cash": usd(5_000),
    }
    early = await svc.client.post(url, json=body, headers=svc.applicant(member))
    assert early.status_code == 409
    await svc.feed_status(application_id, "revision_requested", 5, previous="decision")
    wrong = await svc.client.post(
        url, json={**body, "requested": usd(9_000)}, headers=svc.applicant(member)
    )
    assert broken_rules(wrong) == ["requested"]
    accepted = await svc.client.post(url, json=body, headers=svc.applicant(member))
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["revision"] == 1
    assert accepted.json()["submitted"]["requested"] == usd(9_080)
    [event] = await svc.outbox(APPLICATION_RESUBMITTED, application_id)
    assert event["payload"]["revision"] == 1
    assert event["payload"]["requested"] == usd(9_080)
    twice = await svc.client.post(url, json=body, headers=svc.applicant(member))
    assert twice.status_code == 409


async def test_amendments_are_possible_after_an_award_and_checked_against_the_snapshot(
    svc: RunningIntake,
) -> None:
    member = await svc.new_member()
    application_id = await svc.submitted(member)
    url = f"/v1/applications/{application_id}/amendments"
    body = {"new_exchange_end": "2027-06-01", "reason": "The forum moved a week."}
    early = await svc.client.post(url, json=body, headers=svc.applicant(member))
    assert early.status_code == 409
    await svc.feed_status(application_id, "awarded", 6, previous="decision", awarded=10_000)
    outside = await svc.client.post(
        url,
        json={"new_exchange_end": "2028-02-01", "reason": "Later"},
        headers=svc.applicant(member),
    )
    assert broken_rules(outside) == ["new_exchange_end"]
    accepted = await svc.client.post(url, json=body, headers=svc.applicant(member))
    assert accepted.status_code == 202, accepted.text
    [event] = await svc.outbox(AMENDMENT_REQUESTED, application_id)
    assert event["payload"]["new_exchange_end"] == "2027-06-01"
    assert (
        accepted.json()["requests"][-1]["detail"]["amendment_id"]
        == (event["payload"]["amendment_id"])
    )
    assert accepted.json()["amounts"]["awarded"] == usd(10_000)
    # Once the final payment is under way the award can no longer change.
    await svc.feed_status(application_id, "final_payment", 7, previous="report_review")
    too_late = await svc.client.post(url, json=body, headers=svc.applicant(member))
    assert too_late.status_code == 409
    assert "before the final payment" in too_late.text


async def test_a_catalog_change_never_changes_a_submitted_application(svc: RunningIntake) -> None:
    member = await svc.new_member()
    application_id = await svc.submitted(member)
    original = svc.service.catalog
    aupap = original.programs["AUPAP"].model_copy(
        update={
            "catalog_version": "2027.3",
            "max_award": Money(amount_minor=1_000_000, currency="USD"),
        }
    )
    svc.service.catalog = dataclasses.replace(
        original, version="2027.3", programs={**original.programs, "AUPAP": aupap}
    )
    try:
        view = await svc.client.get(
            f"/v1/applications/{application_id}", headers=svc.applicant(member)
        )
        rules = view.json()["submitted"]["rules"]
        assert (rules["catalog_version"], rules["max_award"]["amount_minor"]) == (
            "2027.2",
            2_500_000,
        )
        programs = await svc.client.get("/v1/programs", headers=svc.applicant(member))
        assert programs.json()["catalog_version"] == "2027.3"
    finally:
        svc.service.catalog = original
    assert isinstance(svc.service.catalog, Catalog)


async def test_applications_list_filters_by_program_and_status_and_pages(
    svc: RunningIntake,
) -> None:
    member = await svc.new_member()
    other = await svc.new_member()
    submitted = await svc.submitted(member)
    drafts = [await svc.new_draft(member, program_code="CITIZEN") for _ in range(3)]
    await svc.new_draft(other)

    async def listing(**params: Any) -> dict[str, Any]:
        response = await svc.client.get(
            "/v1/applications", params=params, headers=svc.applicant(member)
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    everything = await listing()
    assert everything["total"] == 4
    assert {item["member_id"] for item in everything["items"]} == {member}
    assert [i["application_id"] for i in (await listing(status="submitted"))["items"]] == [
        submitted
    ]
    assert (await listing(program="CITIZEN"))["total"] == 3
    first_page, second_page = await listing(limit=2), await listing(limit=2, offset=2)
    assert len(first_page["items"]) == 2 and len(second_page["items"]) == 2
    paged = {i["application_id"] for i in first_page["items"] + second_page["items"]}
    assert paged == {submitted, *drafts}
    assert (await listing(member_id=other))["total"] == 0
    officer = await svc.client.get(
        "/v1/applications", params={"member_id": other}, headers=svc.officer()
    )
    assert officer.json()["total"] == 1


async def test_program_officers_maintain_members_and_exchange_rates(svc: RunningIntake) -> None:
    member = await svc.new_member()
    updated = await svc.client.patch(
        f"/v1/members/{member}", json={"membership_active": False}, headers=svc.officer()
    )
    assert updated.json()["membership_active"] is False
    duplicate = await svc.client.post(
        "/v1/members",
        json={
            "member_id": member,
            "name": "X",
            "country": "US",
            "contacts": [{"name": "A", "email": "a@b.example"}],
        },
        headers=svc.officer(),
    )
    assert duplicate.status_code == 409
    assert (
        await svc.client.patch(
            f"/v1/members/{member}", json={"name": "Mine"}, headers=svc.applicant(member)
        )
    ).status_code == 403

    rate = await svc.client.put(
        "/v1/exchange-rates/ZAR/USD", json={"rate": "0.0561"}, headers=svc.officer()
    )
    assert rate.status_code == 200, rate.text
    assert rate.json()["updated_by"] == "program_officer:program_officer"
    listed = await svc.client.get("/v1/exchange-rates", headers=svc.applicant(member))
    assert {"from_currency": "ZAR", "rate": "0.0561"}.items() <= next(
        r for r in listed.json()["items"] if r["from_currency"] == "ZAR"
    ).items()
    to_itself = await svc.client.put(
        "/v1/exchange-rates/ZAR/ZAR", json={"rate": "2"}, headers=svc.officer()
    )
    assert to_itself.status_code == 409, to_itself.text
    assert "converts to itself at 1" in to_itself.json()["detail"]
    as_float = await svc.client.put(
        "/v1/exchange-rates/ZAR/USD", json={"rate": 0.0561}, headers=svc.officer()
    )
    assert fields(as_float) == ["rate"]
    unknown = await svc.client.put(
        "/v1/exchange-rates/XYZ/USD", json={"rate": "2"}, headers=svc.officer()
    )
    assert fields(unknown) == ["from_currency"]
    by_applicant = await svc.client.put(
        "/v1/exchange-rates/ZAR/USD", json={"rate": "1"}, headers=svc.applicant(member)
    )
    assert by_applicant.status_code == 403
    await svc.client.put(
        "/v1/exchange-rates/ZAR/USD", json={"rate": "0.0550"}, headers=svc.officer()
    )


async def test_demo_members_are_seeded_for_the_printed_tokens(svc: RunningIntake) -> None:
    response = await svc.client.get(
        "/v1/members/demo-member-1", headers=svc.applicant("demo-member-1")
    )
    denver = response.json()
    assert (denver["name"], denver["state"], denver["country"]) == ("Denver", "CO", "US")
    assert {"KE", "CN", "MX"} <= {city["country"] for city in denver["sister_cities"]}
    for number in range(2, 6):
        seeded = await svc.client.get(f"/v1/members/demo-member-{number}", headers=svc.officer())
        assert seeded.status_code == 200
    charlotte = await svc.client.get("/v1/members/demo-member-3", headers=svc.officer())
    assert charlotte.json()["good_standing"] is False


async def test_a_partner_may_decline_and_an_expired_link_is_refused_with_410(
    svc: RunningIntake,
) -> None:
    _, application_id, partner_email = await svc.submitted_with_partner()

    async def request_confirmation(command_id: str, due_at: datetime) -> str:
        command = partner_request(application_id, partner_email, due_at, command_id=command_id)
        await svc.handle(svc.service.request_partner_confirmation, command)
        mails = await svc.wait_for_mail(partner_email, count=len(svc.mails(partner_email)) + 1)
        return link_path(mails[-1].get_content())

    link = await request_confirmation("partner:1", svc.service.now() + timedelta(days=1))
    declined = await svc.client.post(link, json={"answer": "decline", "note": "Not this year"})
    assert declined.status_code == 200, declined.text
    assert declined.json()["confirmed"] is False
    [event] = await svc.outbox(PARTNER_CONFIRMED, application_id)
    assert (event["payload"]["confirmed"], event["payload"]["note"]) == (False, "Not this year")

    expired = await request_confirmation("partner:2", svc.service.now() - timedelta(minutes=1))
    late = await svc.client.post(expired, json={"answer": "confirm"})
    assert late.status_code == 410
    assert "expired" in late.json()["detail"]
    bad = await svc.client.post(expired, json={"answer": "maybe"})
    assert fields(bad) == ["answer"]
    assert len(await svc.outbox(PARTNER_CONFIRMED, application_id)) == 1


async def test_a_request_handled_before_receipts_were_kept_gets_the_recorded_answer(
    svc: RunningIntake,
) -> None:
    """A deployment upgraded mid-flight: the command receipts never saw the first request."""
    _, application_id, partner_email = await svc.submitted_with_partner()
    command = partner_request(application_id, partner_email, svc.service.now() + timedelta(days=1))
    await svc.handle(svc.service.request_partner_confirmation, command)
    [mail] = await svc.queued_mail(partner_email)
    confirmed = await svc.client.post(link_path(mail.body), json={"answer": "confirm"})
    assert confirmed.status_code == 200, confirmed.text
    answer = await svc.outbox(PARTNER_CONFIRMED, application_id)

    await svc.handle(svc.service.request_partner_confirmation, resent(command))
    assert await svc.outbox(PARTNER_CONFIRMED, application_id) == answer
    assert len(await svc.queued_mail(partner_email)) == 1
