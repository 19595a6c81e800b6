"""End to end on Tansu and PostgreSQL: intake's events leave through the broker and the
workflow's and reporting's events come back in, as the other services will send them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.intake.domain import DRAFT_EXAMPLE
from shared.contracts.envelope import Envelope, new_envelope
from shared.contracts.intake import (
    ApplicationSubmitted,
    PartnerConfirmed,
    PlannedOutcomes,
    ProgramCycleOpened,
    program_cycle_key,
)
from shared.contracts.reporting import MemberStandingChanged
from shared.contracts.topics import (
    APPLICATION_STATUS_CHANGED,
    APPLICATION_SUBMITTED,
    MEMBER_STANDING_CHANGED,
    PARTNER_CONFIRMED,
    PROGRAM_CYCLE_OPENED,
    REMINDER_DUE,
    REQUEST_PARTNER_CONFIRMATION,
    Topic,
)
from shared.contracts.workflows import Deadline, ReminderDue
from shared.messaging.outbox import message_headers
from tests.support.intake import (
    OTHER_PROGRAM,
    TODAY,
    RunningIntake,
    link_path,
    partner_request,
    resent,
    running_intake,
    status_event,
    subject,
)
from tests.support.messaging import eventually, read_topic
from tests.support.processes import Tansu

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
async def svc(
    tansu: Tansu, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningIntake]:
    async with running_intake(
        postgres_url, tansu.bootstrap, tmp_path_factory.mktemp("e2e")
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def publish(svc: RunningIntake) -> AsyncIterator[Any]:
    """Publish an envelope as its owning service would (same headers, application id as key)."""
    producer = AIOKafkaProducer(bootstrap_servers=svc.bootstrap, enable_idempotence=False)
    await producer.start()

    async def send(topic: Topic, envelope: Envelope[Any]) -> None:
        await producer.send_and_wait(
            svc.topic(topic),
            value=envelope.model_dump_json().encode(),
            key=envelope.application_id.encode(),
            headers=[(k, v.encode()) for k, v in message_headers(envelope).items()],
        )

    yield send
    await producer.stop()


async def records_for(
    svc: RunningIntake, topic: Topic, application_id: str, count: int = 1
) -> list[Any]:
    """Read ``topic`` from the start, as a test consumer, keeping one application's records."""
    found: list[Any] = []

    async def arrived() -> bool:
        nonlocal found
        records = await read_topic(svc.bootstrap, svc.topic(topic), count=10_000, timeout=0.5)
        found = [r for r in records if r.key == application_id.encode()]
        return len(found) >= count

    await eventually(arrived, timeout=20)
    return found


async def test_a_submitted_application_is_consumed_and_a_status_event_fed_back_shows_in_get(
    svc: RunningIntake, publish: Any
) -> None:
    member = await svc.new_member()
    application_id = await svc.submitted(member)

    [record] = await records_for(svc, APPLICATION_SUBMITTED, application_id)
    submitted = Envelope[ApplicationSubmitted].model_validate_json(record.value)
    assert submitted.payload.member_id == member
    assert submitted.payload.rules.catalog_version == "2027.2"
    assert submitted.payload.requested.amount_minor == 1_100_000
    assert submitted.payload.objectives == DRAFT_EXAMPLE["objectives"]
    # What the applicant expects travels with it, for reporting to compare with the report.
    assert submitted.payload.expected_outcomes == PlannedOutcomes(
        agreements_signed=1, follow_up_projects=2
    )
    assert dict(record.headers)["event_type"] == b"ApplicationSubmitted"

    review_due = TODAY + timedelta(days=30)
    screening = status_event(application_id, "screening", 1, member_id=member, previous="submitted")
    review = status_event(
        application_id,
        "review",
        2,
        member_id=member,
        previous="screening",
        deadlines={"review": review_due},
    )
    await publish(APPLICATION_STATUS_CHANGED, screening)
    await publish(APPLICATION_STATUS_CHANGED, review)
    await publish(APPLICATION_STATUS_CHANGED, review)  # delivered twice: changes nothing

    view: dict[str, Any] = {}

    async def in_review() -> bool:
        nonlocal view
        response = await svc.client.get(
            f"/v1/applications/{application_id}", headers=svc.applicant(member)
        )
        view = response.json()
        return bool(view["status"] == "review")

    await eventually(in_review, timeout=20)
    assert [(h["sequence"], h["stage"]) for h in view["history"]] == [
        (1, "screening"),
        (2, "review"),
    ]
    assert [Deadline.model_validate(d).due_at for d in view["deadlines"]] == [review_due]
    mails = await svc.wait_for_mail(f"{member}@springfield.example.org", count=3)
    assert [subject(mail) for mail in mails][1:] == [
        "Clean water kiosks with Nairobi: screening",
        "Clean water kiosks with Nairobi: review",
    ]


async def test_the_partner_confirms_once_through_the_emailed_link(
    svc: RunningIntake, publish: Any
) -> None:
    member, application_id, partner_email = await svc.submitted_with_partner(name="Nakuru")
    command = partner_request(
        application_id,
        partner_email,
        TODAY + timedelta(days=21),
        command_id=f"application-{application_id}:partner-confirmation:1",
        partner_city="Nakuru",
    )
    await publish(REQUEST_PARTNER_CONFIRMATION, command)
    [mail] = await svc.wait_for_mail(partner_email)
    assert "Please confirm" in subject(mail)
    path = link_path(mail.get_content())

    # The workflow hears nothing before the partner answers and asks again: no second mail.
    early = resent(command)
    await publish(REQUEST_PARTNER_CONFIRMATION, early)

    async def early_request_handled() -> bool:
        return await svc.processed(early)

    await eventually(early_request_handled, timeout=20)
    assert len(await svc.queued_mail(partner_email)) == 1

    page = await svc.client.get(path)
    assert page.status_code == 200 and "We confirm" in page.text and "Nakuru" in page.text
    answered = await svc.client.post(
        path,
        content="answer=confirm&note=We+will+host+the+delegation",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answered.status_code == 200 and "Thank you" in answered.text

    [record] = await records_for(svc, PARTNER_CONFIRMED, application_id)
    confirmation = Envelope[PartnerConfirmed].model_validate_json(record.value)
    confirmed = confirmation.payload
    assert (confirmed.confirmed, confirmed.partner_contact_email) == (True, partner_email)
    assert confirmed.note == "We will host the delegation"

    second = await svc.client.post(path, json={"answer": "decline"})
    assert second.status_code == 409
    assert "already used: the partner confirmed" in second.json()["detail"]
    assert "You confirmed" in (await svc.client.get(path)).text
    view = await svc.client.get(f"/v1/applications/{application_id}", headers=svc.applicant(member))
    assert [r["kind"] for r in view.json()["requests"]] == [
        "submitted",
        "partner_confirmation_requested",
        "partner_confirmed",
    ]

    # The workflow never heard the answer and asks again: the same answer comes again.
    await publish(REQUEST_PARTNER_CONFIRMATION, resent(command))
    records = await records_for(svc, PARTNER_CONFIRMED, application_id, count=2)
    again = [Envelope[PartnerConfirmed].model_validate_json(r.value) for r in records]
    assert {envelope.event_id for envelope in again} == {confirmation.event_id}
    assert all(envelope.payload == confirmed for envelope in again)
    assert len(await svc.queued_mail(partner_email)) == 1


async def test_standing_and_reminder_events_from_other_services_reach_members_and_contacts(
    svc: RunningIntake, publish: Any
) -> None:
    member = await svc.new_member()
    application_id = await svc.submitted(member)
    await publish(
        REMINDER_DUE,
        new_envelope(
            ReminderDue(
                application_id=application_id,
                member_id=member,
                about="report_due",
                due_at=TODAY + timedelta(days=60),
                message="Your post-exchange report is due in 14 days.",
            ),
            producer="workflows",
            application_id=application_id,
        ),
    )
    await publish(
        MEMBER_STANDING_CHANGED,
        new_envelope(
            MemberStandingChanged(
                member_id=member,
                good_standing=False,
                reason="report_overdue",
                application_id=application_id,
                as_of=TODAY.date(),
            ),
            producer="reporting",
            application_id=application_id,
        ),
    )
    mails = await svc.wait_for_mail(f"{member}@springfield.example.org", count=2)
    assert subject(mails[-1]).startswith("Reminder - Clean water kiosks with Nairobi: report due")

    async def standing_lost() -> bool:
        response = await svc.client.get(f"/v1/members/{member}", headers=svc.applicant(member))
        return response.json()["good_standing"] is False

    await eventually(standing_lost, timeout=20)
    other = await svc.new_draft(member, **OTHER_PROGRAM)
    refused = await svc.client.post(
        f"/v1/applications/{other}/submit", headers=svc.applicant(member)
    )
    assert refused.status_code == 409  # the stored member breaks a rule: no schema knows it
    assert [p["field"] for p in refused.json()["detail"]] == ["member"]


async def test_a_status_event_for_an_unknown_application_is_dead_lettered(
    svc: RunningIntake, publish: Any
) -> None:
    await publish(APPLICATION_STATUS_CHANGED, status_event("no-such-application", "review", 1))
    found: list[Any] = []

    async def dead_lettered() -> bool:
        nonlocal found
        records = await read_topic(
            svc.bootstrap, svc.topic(APPLICATION_STATUS_CHANGED) + ".dlq", count=100, timeout=0.5
        )
        found = [r for r in records if r.key == b"no-such-application"]
        return bool(found)

    await eventually(dead_lettered, timeout=20)
    assert "no submitted application no-such-application" in json.loads(found[0].value)["reason"]


async def test_open_program_cycles_are_announced_once_for_their_budgets(
    tansu: Tansu, isolated_database_url: str, tmp_path: Path
) -> None:
    # A database of its own: the announcement is once per database, and the session's shared
    # one has had intake instances (on other topic prefixes) before this one.
    async with running_intake(isolated_database_url, tansu.bootstrap, tmp_path) as own:
        # The test catalog's cycles are open: each is announced at start with its budget.
        key = program_cycle_key("AUPAP", "2027")
        [record] = await records_for(own, PROGRAM_CYCLE_OPENED, key)
        opened = Envelope[ProgramCycleOpened].model_validate_json(record.value)
        aupap = own.service.catalog.get("AUPAP")
        assert opened.payload.annual_budget == aupap.annual_budget
        assert opened.payload.catalog_version == own.service.catalog.version
        # A later look (the daily job, another replica, a restart) announces nothing again.
        async with own.service.work() as work:
            assert await own.service.announce_open_cycles(work) == []
