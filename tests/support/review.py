"""Factories and a harness for the review service's tests.

Every test gets its own freshly migrated database (SQLite file or PostgreSQL database),
because assignment looks at every reviewer in the database: reviewers of another test
would otherwise take part.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from services.review.app import create_app
from services.review.consumers import consumers
from services.review.persistence import ReviewStore, TaskFilter, TaskRow
from services.review.schemas import ReviewerIn
from services.review.service import ReviewService
from services.review.settings import ReviewSettings
from shared.auth import Role, mint_token
from shared.contracts.envelope import Envelope, new_envelope
from shared.contracts.intake import BudgetLine
from shared.contracts.money import Money
from shared.contracts.programs import Rubric, RubricCriterion
from shared.contracts.reporting import ReportSubmitted
from shared.contracts.topics import Topic
from shared.contracts.workflows import (
    ApplicationForReview,
    PartnerForReview,
    ReassignReview,
    RequestReportReview,
    RequestReviews,
)
from shared.mail import FileMailer, Mailer, MailRelay
from shared.messaging.broker import EventHandler
from shared.messaging.consumers import consumer_handlers
from shared.migrations import upgrade
from shared.service import ServiceRuntime
from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
    postgres_database_url,
)
from tests.support.reporting import report_content

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def rubric() -> Rubric:
    return Rubric(
        criteria=[
            RubricCriterion(name="relevance", weight=3, min_score=0, max_score=5),
            RubricCriterion(name="feasibility", weight=2, min_score=1, max_score=5),
            RubricCriterion(name="impact", weight=1, min_score=0, max_score=10),
        ],
        pass_mark_bp=6000,
    )


def report_rubric() -> Rubric:
    return Rubric(
        criteria=[
            RubricCriterion(name="completeness", weight=1),
            RubricCriterion(name="outcomes_achieved", weight=2),
            RubricCriterion(name="spending_matches_budget", weight=2),
        ],
        pass_mark_bp=6000,
    )


def good_scores() -> dict[str, int]:
    return {"relevance": 5, "feasibility": 4, "impact": 8}


def review_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "scores": good_scores(),
        "recommendation": "approve",
        "comments": "Strong partnership, realistic budget.",
        "attest_no_conflict": True,
    }
    body.update(overrides)
    return body


def request_reviews(
    application_id: str = "app-1",
    *,
    round: int = 1,
    reviews_needed: int = 2,
    member_id: str = "member-kisumu",
    member_city: str = "Roanoke",
    program_code: str = "AUPAP",
    focus_area: str = "community_development",
    partner_city: str = "Kisumu",
    partner_country: str = "KE",
    blind_review: bool = False,
    due_at: datetime | None = None,
    command_id: str | None = None,
    title: str = "Roanoke and Kisumu water committees",
    summary: str = "Roanoke hosts six Kisumu engineers for a month.",
) -> Envelope[RequestReviews]:
    return new_envelope(
        RequestReviews(
            command_id=command_id or f"application-{application_id}:review:{round}",
            application_id=application_id,
            round=round,
            reviews_needed=reviews_needed,
            due_at=due_at or NOW + timedelta(days=14),
            member_id=member_id,
            member_city=member_city,
            program_code=program_code,
            focus_area=focus_area,
            partner_city=partner_city,
            partner_country=partner_country,
            blind_review=blind_review,
            title=title,
            summary=summary,
            requested=Money(amount_minor=2_500_000, currency="USD"),
            rubric=rubric(),
            application=application_for_review(partner_city, partner_country),
        ),
        producer="workflows",
        application_id=application_id,
    )


def application_for_review(partner_city: str, partner_country: str) -> ApplicationForReview:
    usd = "USD"
    return ApplicationForReview(
        objectives=f"Six {partner_city} engineers learn kiosk maintenance in Roanoke.",
        exchange_start=(NOW + timedelta(days=90)).date(),
        exchange_end=(NOW + timedelta(days=120)).date(),
        adults=6,
        youth=0,
        partners=[PartnerForReview(name=partner_city, country=partner_country)],
        budget_lines=[
            BudgetLine(
                category="travel",
                description=f"Flights {partner_city} to Roanoke for six engineers",
                amount=Money(amount_minor=1_800_000, currency=usd),
                converted=Money(amount_minor=1_800_000, currency=usd),
            ),
            BudgetLine(
                category="lodging",
                description="Host families, one month",
                amount=Money(amount_minor=700_000, currency=usd),
                converted=Money(amount_minor=700_000, currency=usd),
            ),
        ],
        matching_cash=Money(amount_minor=500_000, currency=usd),
        matching_in_kind=Money(amount_minor=300_000, currency=usd),
    )


def reassign(
    application_id: str = "app-1",
    *,
    round: int = 1,
    task_id: str | None = None,
    command_id: str | None = None,
) -> Envelope[ReassignReview]:
    return new_envelope(
        ReassignReview(
            command_id=command_id or f"application-{application_id}:reassign:{uuid.uuid4().hex}",
            application_id=application_id,
            round=round,
            reason="review deadline passed",
            task_id=task_id,
        ),
        producer="workflows",
        application_id=application_id,
    )


def report_review(
    application_id: str = "app-1",
    *,
    report_id: str = "report-1",
    member_id: str = "member-kisumu",
    command_id: str | None = None,
) -> Envelope[RequestReportReview]:
    return new_envelope(
        RequestReportReview(
            command_id=command_id or f"application-{application_id}:report-review:{report_id}",
            application_id=application_id,
            report_id=report_id,
            member_id=member_id,
            program_code="AUPAP",
            due_at=NOW + timedelta(days=10),
            rubric=report_rubric(),
        ),
        producer="workflows",
        application_id=application_id,
    )


def report_submitted(
    application_id: str = "app-1",
    *,
    report_id: str = "report-1",
    revision: int = 1,
    lessons_learned: str = "Book flights early.",
) -> Envelope[ReportSubmitted]:
    """The reporting service's event for a submitted post-exchange report."""
    content = report_content().model_copy(update={"lessons_learned": lessons_learned})
    return new_envelope(
        ReportSubmitted(
            application_id=application_id,
            report_id=report_id,
            member_id="member-kisumu",
            actual_spending=content.spending[0].converted,
            revision=revision,
            content=content,
        ),
        producer="reporting",
        application_id=application_id,
    )


def reviewer(
    reviewer_id: str,
    home_city: str = "Asheville",
    *,
    programs: tuple[str, ...] = ("AUPAP",),
    focus_areas: tuple[str, ...] = ("community_development",),
    regions: tuple[str, ...] = ("KE",),
    capacity: int = 5,
    active: bool = True,
    conflict_members: tuple[str, ...] = (),
    conflict_cities: tuple[str, ...] = (),
) -> ReviewerIn:
    return ReviewerIn.model_validate(
        {
            "id": reviewer_id,
            "name": reviewer_id.replace("-", " ").title(),
            "email": f"{reviewer_id}@reviewers.example.org",
            "home_city": home_city,
            "expertise": {
                "programs": list(programs),
                "focus_areas": list(focus_areas),
                "regions": list(regions),
                "languages": ["en"],
            },
            "capacity": capacity,
            "active": active,
            "conflicts": {"members": list(conflict_members), "cities": list(conflict_cities)},
        }
    )


_sqlite_template: list[Path] = []


async def _migrated_sqlite_template() -> Path:
    """Migrated once per test session; each test copies it (a copy takes a millisecond)."""
    if not _sqlite_template:
        directory = Path(tempfile.mkdtemp(prefix="grantflow-review-"))
        atexit.register(shutil.rmtree, directory, True)
        template = directory / "template.db"
        await asyncio.to_thread(upgrade, "review", f"sqlite+aiosqlite:///{template}")
        _sqlite_template.append(template)
    return _sqlite_template[0]


async def fresh_database(kind: str, directory: Path) -> tuple[str, str | None]:
    """A new, migrated database; returns its URL and, for PostgreSQL, its name to drop."""
    if kind == "sqlite":
        path = directory / f"review-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(await _migrated_sqlite_template(), path)
        return f"sqlite+aiosqlite:///{path}", None
    name = await create_postgres_database("grantflow_review")
    url = postgres_database_url(name)
    await asyncio.to_thread(upgrade, "review", url)
    return url, name


async def drop_database(name: str | None) -> None:
    if name:
        await drop_postgres_database(name)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def handlers_by_payload(review: ReviewService) -> dict[type[Any], tuple[Topic, EventHandler]]:
    """The handlers the service's consumer runs for each message, by payload type: the
    shared consumer's own (inbox, command receipts, log context around the use case)."""
    handlers = consumer_handlers(review, consumers(review))
    return {topic.payload: (topic, handler) for topic, handler in handlers.items()}


@dataclass(frozen=True)
class OutboxEvent:
    topic: str
    event_id: str
    event_type: str
    application_id: str
    correlation_id: str
    payload: dict[str, Any]
    subject: str | None
    sent: bool


@dataclass(frozen=True)
class QueuedMail:
    kind: str
    recipients: list[str]
    subject: str
    body: str
    application_id: str | None


@dataclass
class ReviewHarness:
    """The review app in-process (no lifespan: no broker, no relay), with its tokens."""

    app: FastAPI
    settings: ReviewSettings
    clock: Clock
    client: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)
    handlers: dict[type[Any], tuple[Topic, EventHandler]] = field(default_factory=dict)

    @property
    def runtime(self) -> ServiceRuntime:
        runtime: ServiceRuntime = self.app.state.runtime
        return runtime

    @property
    def service(self) -> ReviewService:
        service: ReviewService = self.app.state.service
        return service

    def token(
        self, role: Role, *, reviewer_id: str | None = None, member_id: str | None = None
    ) -> str:
        key = f"{role}:{reviewer_id}:{member_id}"
        if key not in self.tokens:
            self.tokens[key] = mint_token(
                self.settings, role=role, reviewer_id=reviewer_id, member_id=member_id
            )
        return self.tokens[key]

    def token_for(self, reviewer_id: str) -> str:
        return self.token(Role.REVIEWER, reviewer_id=reviewer_id)

    def as_reviewer(self, reviewer_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_for(reviewer_id)}"}

    def as_officer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(Role.PROGRAM_OFFICER)}"}

    def as_applicant(self, member_id: str = "member-kisumu") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(Role.APPLICANT, member_id=member_id)}"}

    async def add_reviewers(self, *profiles: ReviewerIn) -> None:
        """As an officer would through ``POST /v1/reviewers``, in one transaction."""
        async with self.service.work() as work:
            for profile in profiles:
                await self.service.create_reviewer(work, profile)

    async def deliver(self, event: Envelope[Any]) -> None:
        """Hand ``event`` to the service as its consumer would, after reading it off Kafka."""
        if not self.handlers:
            self.handlers = handlers_by_payload(self.service)
        _topic, handle = self.handlers[type(event.payload)]
        await handle(event)

    async def remind(self) -> int:
        async with self.service.work() as work:
            return await self.service.remind_due(work)

    async def send_mail(self, mailer: Mailer) -> int:
        """One round of the shared mail relay the service runs as a job."""
        relay = MailRelay(self.runtime.tables, self.runtime.sessions, mailer)
        return await relay.send_pending()

    async def outbox(self, topic_suffix: str = "") -> list[OutboxEvent]:
        """Events written to the outbox, oldest first."""
        table = self.runtime.tables.outbox
        async with self.runtime.sessions() as session:
            rows = (await session.execute(select(table).order_by(table.c.id))).all()
        events = []
        for row in rows:
            if not row.topic.endswith(topic_suffix):
                continue
            body = json.loads(row.body)
            events.append(
                OutboxEvent(
                    topic=row.topic,
                    event_id=body["event_id"],
                    event_type=body["event_type"],
                    application_id=body["application_id"],
                    correlation_id=body["correlation_id"],
                    payload=body["payload"],
                    subject=row.subject,
                    sent=row.sent_at is not None,
                )
            )
        return events

    async def relay_everything(self) -> None:
        """Mark every outbox row sent, as the relay does once the broker acknowledged it."""
        table = self.runtime.tables.outbox
        async with self.runtime.sessions() as session, session.begin():
            await session.execute(update(table).values(sent_at=self.clock()))

    async def tasks(self, application_id: str) -> list[TaskRow]:
        async with self.service.reading() as work:
            found = await ReviewStore(work.session).find_tasks(
                TaskFilter(application_id=application_id)
            )
        return [record.task for record in found]

    async def queued_mail(self) -> list[QueuedMail]:
        table = self.runtime.tables.mail
        async with self.runtime.sessions() as session:
            rows = (await session.execute(select(table).order_by(table.c.id))).all()
        return [
            QueuedMail(row.kind, list(row.recipients), row.subject, row.body, row.application_id)
            for row in rows
        ]


async def review_service(
    database_url: str, state_dir: Path, **settings: Any
) -> AsyncIterator[ReviewHarness]:
    clock = Clock()
    config = ReviewSettings(
        environment="test", database_url=database_url, state_dir=state_dir, **settings
    )
    app = create_app(config, clock=clock, mailer=FileMailer(state_dir / "mail"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://review") as client:
        yield ReviewHarness(app, config, clock, client)
    await app.state.runtime.engine.dispose()
