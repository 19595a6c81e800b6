"""Applications with several partner cities, on SQLite and PostgreSQL: the draft's checks
per partner, the submission carrying every partner, and one link per partner whose answer
is filed where a repeat of that partner's request looks for it."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from services.intake.consumers import consumers
from services.intake.domain import partner_confirmation_subject
from services.intake.persistence import partner_links
from shared.contracts.topics import (
    APPLICATION_SUBMITTED,
    PARTNER_CONFIRMED,
    REQUEST_PARTNER_CONFIRMATION,
)
from shared.messaging.consumers import consumer_handlers
from tests.support.intake import (
    RunningIntake,
    link_path,
    partner_request,
    resent,
    subject,
    trilateral,
)


def problems(checks: Any) -> dict[str, str]:
    assert checks.status_code == 200, checks.text
    return {problem["field"]: problem["message"] for problem in checks.json()["problems"]}


async def filed_answers(svc: RunningIntake, application_id: str) -> dict[str, str]:
    """Each partner's published answer (by contact e-mail) and the subject it is filed under."""
    table = svc.service.runtime.tables.outbox
    query = select(table.c.body, table.c.subject).where(
        table.c.topic == svc.topic(PARTNER_CONFIRMED), table.c.message_key == application_id
    )
    async with svc.service.reading() as work:
        rows = (await work.session.execute(query)).all()
    return {json.loads(row.body)["payload"]["partner_contact_email"]: row.subject for row in rows}


async def receipt_subject(svc: RunningIntake, command_id: str) -> str | None:
    table = svc.service.runtime.tables.commands
    async with svc.service.reading() as work:
        return await work.session.scalar(
            select(table.c.subject).where(table.c.command_id == command_id)
        )


async def test_a_trilateral_draft_is_checked_per_partner_and_submits_every_partner(
    svc: RunningIntake,
) -> None:
    member = await svc.new_member()
    tag = uuid.uuid4().hex[:8]
    body = trilateral(tag)
    mexico, canada = body["partner"], body["other_partners"][0]
    application_id = await svc.new_draft(member, **{**body, "other_partners": None})
    url = f"/v1/applications/{application_id}"
    headers = svc.applicant(member)
    found = problems(await svc.client.get(url + "/checks", headers=headers))
    assert found == {"partners": "a partner in CA is required"}

    # A partner beyond the first is validated field by field, named by its place.
    malformed = await svc.client.patch(
        url, json={"other_partners": [{"name": "Guelph", "country": "Canada"}]}, headers=headers
    )
    assert malformed.status_code == 422
    assert {p["field"] for p in malformed.json()["detail"]} >= {
        "other_partners[0].country",
        "other_partners[0].contact_email",
    }
    shared_contact = {**canada, "contact_email": mexico["contact_email"]}
    saved = await svc.client.patch(url, json={"other_partners": [shared_contact]}, headers=headers)
    assert saved.status_code == 200, saved.text
    found = problems(await svc.client.get(url + "/checks", headers=headers))
    assert list(found) == ["other_partners[0].contact_email"]

    await svc.client.patch(url, json={"other_partners": [canada]}, headers=headers)
    assert problems(await svc.client.get(url + "/checks", headers=headers)) == {}
    submitted = await svc.client.post(url + "/submit", headers=headers)
    assert submitted.status_code == 202, submitted.text

    [event] = await svc.outbox(APPLICATION_SUBMITTED, application_id)
    payload = event["payload"]
    assert payload["partner"]["country"] == "MX"
    assert [(p["name"], p["country"]) for p in payload["other_partners"]] == [("Guelph", "CA")]
    view = (await svc.client.get(url, headers=headers)).json()
    assert [(p["name"], p["contact_email"]) for p in view["partners"]] == [
        ("Puebla", mexico["contact_email"]),
        ("Guelph", canada["contact_email"]),
    ]
    officer_view = (await svc.client.get(url, headers=svc.officer())).json()
    assert officer_view["fields"]["other_partners"][0]["name"] == "Guelph"
    [mail] = await svc.wait_for_mail(f"{member}@springfield.example.org")
    assert "your partners' confirmation" in mail.get_content()


async def test_each_partner_confirms_through_its_own_link(svc: RunningIntake) -> None:
    member = await svc.new_member()
    tag = uuid.uuid4().hex[:8]
    body = trilateral(tag)
    application_id = await svc.submitted(member, **body)
    puebla, guelph = body["partner"]["contact_email"], body["other_partners"][0]["contact_email"]
    handle = consumer_handlers(svc.service, consumers(svc.service))[REQUEST_PARTNER_CONFIRMATION]
    due = svc.service.now() + timedelta(days=21)
    commands = {
        email: partner_request(
            application_id, email, due, command_id=f"{tag}:{email}", partner_city=city
        )
        for email, city in ((puebla, "Puebla"), (guelph, "Guelph"))
    }
    for command in commands.values():
        await handle(command)
    links = {}
    for email, city, other in ((puebla, "Puebla", "Guelph (CA)"), (guelph, "Guelph", "Puebla")):
        [mail] = await svc.wait_for_mail(email)
        assert "Please confirm" in subject(mail)
        text = mail.get_content()
        assert f"Dear colleagues in {city}" in text and other in text
        links[email] = link_path(text)
    assert links[puebla] != links[guelph]

    # Each receipt has its own partner's subject; the first partner's is not the old one.
    subjects = {
        email: await receipt_subject(svc, c.payload.command_id) for email, c in commands.items()
    }
    assert subjects == {
        email: partner_confirmation_subject(application_id, email) for email in commands
    }

    page = await svc.client.get(links[guelph])
    assert page.status_code == 200 and "Guelph" in page.text
    confirmed = await svc.client.post(links[guelph], json={"answer": "confirm"})
    assert confirmed.status_code == 200, confirmed.text
    assert await filed_answers(svc, application_id) == {guelph: subjects[guelph]}
    # One partner's answer leaves the other's link as it was, and its own is spent.
    assert "We confirm" in (await svc.client.get(links[puebla])).text
    assert (await svc.client.post(links[guelph], json={"answer": "decline"})).status_code == 409

    # A repeated request sends its partner no second mail.
    await handle(resent(commands[puebla]))
    assert len(await svc.queued_mail(puebla)) == 1
    declined = await svc.client.post(links[puebla], json={"answer": "decline", "note": "No"})
    assert declined.status_code == 200
    assert await filed_answers(svc, application_id) == subjects
    events = await svc.outbox(PARTNER_CONFIRMED, application_id)
    said = {e["payload"]["partner_contact_email"]: e["payload"]["confirmed"] for e in events}
    assert said == {guelph: True, puebla: False}
    view = (
        await svc.client.get(f"/v1/applications/{application_id}", headers=svc.applicant(member))
    ).json()
    requests = [(r["kind"], r["actor"]) for r in view["requests"]]
    assert ("partner_confirmed", f"partner:{guelph}") in requests
    assert ("partner_declined", f"partner:{puebla}") in requests


async def test_a_link_made_before_partners_had_their_own_subject_keeps_the_old_one(
    svc: RunningIntake,
) -> None:
    """An upgrade mid-flight: the request's receipt and its link carry the application's one
    subject, and the partner answers after the upgrade."""
    _, application_id, email = await svc.submitted_with_partner()
    command = partner_request(
        application_id, email, svc.service.now() + timedelta(days=21), command_id=uuid.uuid4().hex
    )
    old_subject = partner_confirmation_subject(application_id)
    async with svc.service.work(command, subject=old_subject) as work:
        assert await work.runtime.receipts.first_time(
            work.session,
            command_id=command.payload.command_id,
            topic=REQUEST_PARTNER_CONFIRMATION.name,
            subject=old_subject,
        )
        await svc.service.request_partner_confirmation(work, command)
        # Links were made without a subject then.
        await work.session.execute(
            update(partner_links)
            .where(partner_links.c.application_id == application_id)
            .values(subject=None)
        )
    [mail] = await svc.wait_for_mail(email)
    answered = await svc.client.post(link_path(mail.get_content()), json={"answer": "confirm"})
    assert answered.status_code == 200, answered.text
    assert await filed_answers(svc, application_id) == {email: old_subject}
    assert await receipt_subject(svc, command.payload.command_id) == old_subject


async def test_an_application_with_one_partner_shows_and_submits_just_that_one(
    svc: RunningIntake,
) -> None:
    member = await svc.new_member()
    application_id = await svc.submitted(member)
    view = (
        await svc.client.get(f"/v1/applications/{application_id}", headers=svc.applicant(member))
    ).json()
    assert [p["country"] for p in view["partners"]] == ["KE"]
    [event] = await svc.outbox(APPLICATION_SUBMITTED, application_id)
    assert event["payload"]["other_partners"] == []
