"""An intake service running in-process on real Tansu and a real database, and small factories."""

from __future__ import annotations

import asyncio
import copy
import email
import email.policy
import itertools
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from services.intake.app import create_app
from services.intake.domain import DRAFT_EXAMPLE
from services.intake.service import IntakeService
from services.intake.settings import IntakeSettings
from shared.auth import Role, mint_token
from shared.contracts.envelope import Envelope, new_envelope
from shared.contracts.money import Money
from shared.contracts.topics import (
    AMENDMENT_REQUESTED,
    APPLICATION_RESUBMITTED,
    APPLICATION_STATUS_CHANGED,
    APPLICATION_SUBMITTED,
    APPLICATION_WITHDRAWN,
    MEMBER_STANDING_CHANGED,
    PARTNER_CONFIRMED,
    PROGRAM_CYCLE_OPENED,
    REMINDER_DUE,
    REQUEST_PARTNER_CONFIRMATION,
    Topic,
)
from shared.contracts.workflows import (
    Amounts,
    ApplicationStatusChanged,
    Deadline,
    RequestPartnerConfirmation,
)
from shared.messaging.topics_admin import ensure_topics
from shared.migrations import upgrade
from shared.service import Work
from tests.support.messaging import on_test_broker

# The day the tests live in: the 2027 catalog's application window is open.
TODAY = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
INTAKE_TOPICS: tuple[Topic, ...] = (
    APPLICATION_SUBMITTED,
    APPLICATION_WITHDRAWN,
    APPLICATION_RESUBMITTED,
    AMENDMENT_REQUESTED,
    PARTNER_CONFIRMED,
    APPLICATION_STATUS_CHANGED,
    REMINDER_DUE,
    MEMBER_STANDING_CHANGED,
    REQUEST_PARTNER_CONFIRMATION,
    PROGRAM_CYCLE_OPENED,
)
_serial = itertools.count(1)


def ticking_clock(start: datetime = TODAY) -> Callable[[], datetime]:
    """A clock that starts at ``start`` and runs at real speed."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


def draft(**changes: Any) -> dict[str, Any]:
    """A draft that passes every check (AUPAP, partner in Kenya); ``changes`` replace fields."""
    body = copy.deepcopy(DRAFT_EXAMPLE)
    body.update(changes)
    return body


def subject(mail: EmailMessage) -> str:
    """The subject as a reader sees it (a folded header keeps a leading space when parsed)."""
    return str(mail["Subject"]).strip()


def usd(dollars: int) -> dict[str, Any]:
    return {"amount_minor": dollars * 100, "currency": "USD"}


# A draft under another program, its money inside that program's caps: the one-open-
# application-per-cycle rule must not stop it.
OTHER_PROGRAM = {
    "program_code": "SINO-AFRICAN",
    # The Sino-African Initiative needs a partner in China besides the one in Kenya.
    "other_partners": [
        {
            "name": "Kunming",
            "country": "CN",
            "contact_name": "Li Wei",
            "contact_email": "twinning@kunming.example.org",
        }
    ],
    "matching_cash": usd(4_524),
    "matching_in_kind": usd(0),
    "requested": usd(10_556),
}


def partner(name: str, country: str, email: str) -> dict[str, str]:
    return {
        "name": name,
        "country": country,
        "contact_name": f"{name} desk",
        "contact_email": email,
    }


def trilateral(tag: str) -> dict[str, Any]:
    """A Young Ambassadors Tri-lateral draft: partners in Mexico and Canada whose contacts'
    addresses (tagged with ``tag``) no other test shares; 11,000 USD requested, 27% matching."""
    return {
        "program_code": "YAP-TNA",
        "focus_area": "youth_and_education",
        "title": "Youth orchestras of three cities",
        "partner": partner("Puebla", "MX", f"puebla-{tag}@partner.example.org"),
        "other_partners": [partner("Guelph", "CA", f"guelph-{tag}@partner.example.org")],
        "delegation": {"adults": 2, "youth": 10},
    }


@dataclass
class RunningIntake:
    app: FastAPI
    client: httpx.AsyncClient
    settings: IntakeSettings
    service: IntakeService
    database_url: str
    bootstrap: str
    state_dir: Path

    @property
    def prefix(self) -> str:
        return self.settings.topic_prefix

    def topic(self, topic: Topic) -> str:
        return topic.qualified(self.prefix)

    def headers(self, role: Role, member_id: str | None = None) -> dict[str, str]:
        token = mint_token(self.settings, role=role, member_id=member_id)
        return {"Authorization": f"Bearer {token}"}

    def officer(self) -> dict[str, str]:
        return self.headers(Role.PROGRAM_OFFICER)

    def applicant(self, member_id: str) -> dict[str, str]:
        return self.headers(Role.APPLICANT, member_id)

    async def new_member(self, **changes: Any) -> str:
        """A fresh member city in good standing, with sister cities in Kenya, China, Mexico."""
        member_id = f"city-{next(_serial)}-{uuid.uuid4().hex[:6]}"
        body = {
            "member_id": member_id,
            "name": f"Springfield {member_id[-6:]}",
            "state": "IL",
            "country": "US",
            "contacts": [{"name": "Pat Doe", "email": f"{member_id}@springfield.example.org"}],
            "sister_cities": [
                {"name": "Nakuru", "country": "KE"},
                {"name": "Xi'an", "country": "CN"},
                {"name": "Puebla", "country": "MX"},
            ],
            **changes,
        }
        response = await self.client.post("/v1/members", json=body, headers=self.officer())
        assert response.status_code == 201, response.text
        return member_id

    async def new_draft(self, member_id: str, **changes: Any) -> str:
        body = draft(**changes)
        body["contacts"] = [{"name": "Pat Doe", "email": f"{member_id}@springfield.example.org"}]
        response = await self.client.post(
            "/v1/applications", json=body, headers=self.applicant(member_id)
        )
        assert response.status_code == 201, response.text
        return str(response.json()["application_id"])

    async def submitted(self, member_id: str, **changes: Any) -> str:
        application_id = await self.new_draft(member_id, **changes)
        response = await self.client.post(
            f"/v1/applications/{application_id}/submit", headers=self.applicant(member_id)
        )
        assert response.status_code == 202, response.text
        return application_id

    async def submitted_with_partner(self, **partner: str) -> tuple[str, str, str]:
        """A new member's submitted application: the member, the application and the
        address of its partner's contact, which no other test shares."""
        member_id = await self.new_member()
        email = f"partner-of-{member_id}@partner.example.org"
        body = {**draft()["partner"], "contact_email": email, **partner}
        return member_id, await self.submitted(member_id, partner=body), email

    async def feed_status(
        self,
        application_id: str,
        stage: str,
        sequence: int,
        *,
        previous: str | None = None,
        action_required: str | None = None,
        awarded: int | None = None,
        deadlines: dict[str, datetime] | None = None,
    ) -> None:
        """Apply a status event as the workflow would publish it (without the broker)."""
        await self.handle(
            self.service.apply_status_change,
            status_event(
                application_id,
                stage,
                sequence,
                previous=previous,
                action_required=action_required,
                awarded=awarded,
                deadlines=deadlines,
            ),
        )

    async def handle(
        self, use_case: Callable[[Work, Any], Awaitable[None]], event: Envelope[Any]
    ) -> None:
        """Run a consumer's use case on ``event`` in one unit of work (without the broker)."""
        async with self.service.work(event) as work:
            await use_case(work, event)

    async def outbox(
        self, topic: Topic | None = None, application_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Envelopes (as JSON) that intake wrote to its outbox (for ``topic``)."""
        table = self.service.runtime.tables.outbox
        query = select(table.c.body).order_by(table.c.id)
        if topic is not None:
            query = query.where(table.c.topic == self.topic(topic))
        if application_id is not None:
            query = query.where(table.c.message_key == application_id)
        async with self.service.reading() as work:
            return [json.loads(body) for body in (await work.session.scalars(query)).all()]

    async def processed(self, event: Envelope[Any]) -> bool:
        """Whether a consumer of intake has handled ``event`` (its inbox has the id)."""
        table = self.service.runtime.tables.inbox
        query = select(table.c.event_id).where(table.c.event_id == str(event.event_id))
        async with self.service.reading() as work:
            return await work.session.scalar(query) is not None

    async def queued_mail(self, to: str) -> list[Any]:
        """Mail queued for ``to`` (sent or not), oldest first."""
        table = self.service.runtime.tables.mail
        async with self.service.reading() as work:
            rows = await work.session.execute(select(table).order_by(table.c.id))
            return [row for row in rows if to in row.recipients]

    def mails(self, to: str | None = None) -> list[EmailMessage]:
        directory = self.settings.mail_dir
        found = []
        for path in sorted(directory.glob("*.eml")) if directory.exists() else []:
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            if to is None or to in str(message["To"]):
                found.append(message)
        return found

    async def wait_for_mail(
        self, to: str, count: int = 1, timeout: float = 10.0
    ) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.mails(to)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"no mail to {to} within {timeout}s: {len(self.mails(to))} found")


def status_event(
    application_id: str,
    stage: str,
    sequence: int,
    *,
    member_id: str = "unknown",
    previous: str | None = None,
    action_required: str | None = None,
    awarded: int | None = None,
    deadlines: dict[str, datetime] | None = None,
) -> Envelope[ApplicationStatusChanged]:
    amounts = None
    if awarded is not None:
        amounts = Amounts(requested=usd_money(awarded), awarded=usd_money(awarded))
    return new_envelope(
        ApplicationStatusChanged(
            application_id=application_id,
            member_id=member_id,
            program_code="AUPAP",
            stage=stage,
            previous_stage=previous,
            action_required=action_required,
            deadlines=[Deadline(name=name, due_at=at) for name, at in (deadlines or {}).items()],
            amounts=amounts,
            sequence=sequence,
        ),
        producer="workflows",
        application_id=application_id,
    )


def partner_request(
    application_id: str,
    partner_email: str,
    due_at: datetime,
    *,
    command_id: str = "partner:1",
    partner_city: str = "Nairobi",
) -> Envelope[RequestPartnerConfirmation]:
    """The workflow's request that the partner confirm, as it publishes it."""
    return new_envelope(
        RequestPartnerConfirmation(
            command_id=command_id,
            application_id=application_id,
            partner_city=partner_city,
            partner_contact_email=partner_email,
            due_at=due_at,
        ),
        producer="workflows",
        application_id=application_id,
    )


def resent(command: Envelope[RequestPartnerConfirmation]) -> Envelope[RequestPartnerConfirmation]:
    """The same command sent again by the workflow: a new event, the same command id."""
    return new_envelope(
        command.payload, producer="workflows", application_id=command.application_id
    )


def link_path(mail_text: str) -> str:
    """The path of the partner's one-time link in a mail."""
    found = re.search(r"https?://\S+?(/v1/partner-confirmations/\S+)", mail_text)
    assert found is not None, mail_text
    return found.group(1)


def usd_money(dollars: int) -> Money:
    return Money(amount_minor=dollars * 100, currency="USD")


@asynccontextmanager
async def running_intake(
    database_url: str, bootstrap: str, state_dir: Path, **options: Any
) -> AsyncIterator[RunningIntake]:
    """Migrate, create the topics intake uses, start the app and a client on it."""
    await asyncio.to_thread(upgrade, "intake", database_url)
    settings = IntakeSettings(
        **on_test_broker(bootstrap, f"t{uuid.uuid4().hex[:10]}."),
        database_url=database_url,
        state_dir=state_dir,
        log_level="WARNING",
        catalog=options.pop("catalog", "default"),
        public_url="http://intake.test",
        seed_demo_data=True,
        mail_poll_interval_ms=50,
    )
    names = [topic.qualified(settings.topic_prefix) for topic in INTAKE_TOPICS]
    await ensure_topics(bootstrap, names + [name + ".dlq" for name in names])
    app = create_app(settings, clock=options.pop("clock", ticking_clock()))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as client:
            yield RunningIntake(
                app=app,
                client=client,
                settings=settings,
                service=app.state.service,
                database_url=database_url,
                bootstrap=bootstrap,
                state_dir=state_dir,
            )
