"""Factories for the reporting service's tests: events, and a hand-computed program history.

``history()`` is a small, complete set of grants events for four applications in two
programs, with duplicates (the same event twice, and the same fact re-sent under a new
event id) and events out of their natural order. ``EXPECTED`` holds the figures worked out
by hand from it; the analytics must arrive at exactly these, whatever the delivery order.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI
from faststream.kafka import TestKafkaBroker
from pydantic import BaseModel

from shared.auth import Role, mint_token
from shared.contracts import topics
from shared.contracts.disbursement import (
    AwardAdjusted,
    DisbursementSettled,
    FundsReserved,
    RefundReceived,
    RefundRequested,
)
from shared.contracts.envelope import Envelope, new_envelope
from shared.contracts.intake import (
    ApplicationSubmitted,
    ApplicationWithdrawn,
    BudgetLine,
    PartnerCity,
    PlannedOutcomes,
)
from shared.contracts.money import Money
from shared.contracts.programs import ProgramRules, Rubric, RubricCriterion, Tranche
from shared.contracts.reporting import (
    ReportActivity,
    ReportContent,
    ReportOutcomes,
    ReportParticipants,
    ReportSubmitted,
    SpendingLine,
)
from shared.contracts.review import CriterionScore, ReportReviewed, ReviewCompleted
from shared.contracts.topics import ALL_TOPICS, Topic
from shared.contracts.workflows import (
    Amounts,
    ApplicationStatusChanged,
    ReportOverdue,
    RequestReport,
)
from shared.messaging.outbox import message_headers

if TYPE_CHECKING:  # the review service's tests borrow this module's report factories
    from services.reporting.service import ReportingService
    from services.reporting.settings import ReportingSettings

Event = tuple[Topic, Envelope[Any]]
Feed = Callable[..., Awaitable[None]]


@dataclass
class Served:
    """A reporting app under test, the HTTP client that calls it, and its settings."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: ReportingSettings
    unique: str

    @property
    def service(self) -> ReportingService:
        service: ReportingService = self.app.state.service
        return service

    def headers(self, role: Role, member_id: str | None = None) -> dict[str, str]:
        token = mint_token(
            self.settings,
            role=role,
            member_id=member_id,
            reviewer_id="rev-1" if role is Role.REVIEWER else None,
        )
        return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def consumer_of(app: FastAPI) -> AsyncIterator[Feed]:
    """Feed events to the service's consumer as the broker would, without a broker.

    Each event goes through what the subscriber runs (parsing, the inbox, command
    receipts, the use case) by way of FastStream's in-memory test broker; the flow over
    the real broker has its own tests.
    """
    runtime = app.state.runtime
    prefix = runtime.settings.topic_prefix
    async with TestKafkaBroker(runtime.broker) as broker:

        async def feed(*events: Event) -> None:
            for topic, envelope in events:
                await broker.publish(
                    envelope.model_dump_json().encode(),
                    topic=topic.qualified(prefix),
                    key=envelope.application_id.encode(),
                    headers=message_headers(envelope),
                )

        yield feed


PROGRAM_NAMES = {
    "AUPAP": "African Urban Poverty Alleviation Program",
    "YAP-TNA": "Young Ambassadors Program: Tri-lateral North America",
}


def usd(amount_minor: int) -> Money:
    return Money(amount_minor=amount_minor, currency="USD")


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def rules(code: str = "AUPAP") -> ProgramRules:
    rubric = Rubric(criteria=[RubricCriterion(name="relevance", weight=1)], pass_mark_bp=6000)
    return ProgramRules(
        code=code,
        name=PROGRAM_NAMES.get(code, code),
        catalog_version="test-1",
        cycle="2027",
        currency="USD",
        application_opens=date(2026, 10, 1),
        application_closes=date(2027, 3, 1),
        exchange_period_start=date(2027, 3, 1),
        exchange_period_end=date(2027, 12, 31),
        eligible_partner_countries=[],
        focus_areas=["business_and_trade", "youth_and_education", "community_development"],
        max_award=usd(2_000_000),
        min_matching_bp=0,
        annual_budget=usd(100_000_000),
        reviewers_needed=2,
        rubric=rubric,
        report_rubric=rubric,
        tranches=[
            Tranche(share_bp=7000, due="after_award"),
            Tranche(share_bp=3000, due="after_report_approved"),
        ],
        partner_confirmation_period=timedelta(days=14),
        review_period=timedelta(days=30),
        revision_period=timedelta(days=14),
        payment_settlement_period=timedelta(days=5),
        report_due_after=timedelta(days=30),
        report_review_period=timedelta(days=14),
        report_changes_period=timedelta(days=14),
    )


def budget_line(currency: str, amount_minor: int, usd_minor: int, category: str) -> BudgetLine:
    return BudgetLine(
        category=category,
        description=f"{category} costs",
        amount=Money(amount_minor=amount_minor, currency=currency),
        converted=usd(usd_minor),
    )


# Who publishes each payload: consumers refuse an event whose producer does not own its topic.
OWNERS = {topic.payload: topic.owner.value for topic in ALL_TOPICS}


def envelope(
    payload: BaseModel, application_id: str, when: datetime, event_id: uuid.UUID | None = None
) -> Envelope[Any]:
    return new_envelope(
        payload,
        producer=OWNERS[type(payload)],
        application_id=application_id,
        occurred_at=when,
        event_id=event_id,
    )


def submitted(
    application_id: str,
    *,
    when: datetime,
    program: str = "AUPAP",
    member_id: str = "m-1",
    member_name: str = "Springfield",
    focus_area: str = "community_development",
    country: str = "KE",
    requested: int = 1_000_000,
    budget: list[BudgetLine] | None = None,
    exchange_end: date = date(2027, 6, 30),
    expected: PlannedOutcomes | None = None,
) -> Event:
    payload = ApplicationSubmitted(
        application_id=application_id,
        member_id=member_id,
        member_name=member_name,
        member_country="US",
        program_code=program,
        cycle="2027",
        focus_area=focus_area,
        title=f"Exchange {application_id}",
        summary="A sister-city exchange.",
        partner=PartnerCity(
            name="Partner city",
            country=country,
            contact_name="Contact",
            contact_email="contact@partner.example",
        ),
        exchange_start=exchange_end - timedelta(days=10),
        exchange_end=exchange_end,
        adults=5,
        youth=0,
        budget_lines=budget or [budget_line("USD", requested, requested, "travel")],
        requested=usd(requested),
        matching_cash=usd(0),
        matching_in_kind=usd(0),
        contact_emails=["mayor@member.example"],
        expected_outcomes=expected,
        rules=rules(program),
    )
    return topics.APPLICATION_SUBMITTED, envelope(payload, application_id, when)


def status(
    application_id: str,
    sequence: int,
    stage: str,
    *,
    when: datetime,
    program: str = "AUPAP",
    member_id: str = "m-1",
    awarded: int | None = None,
) -> Event:
    payload = ApplicationStatusChanged(
        application_id=application_id,
        member_id=member_id,
        program_code=program,
        stage=stage,
        previous_stage=None,
        sequence=sequence,
        amounts=Amounts(requested=usd(0), awarded=usd(awarded) if awarded is not None else None),
    )
    return topics.APPLICATION_STATUS_CHANGED, envelope(payload, application_id, when)


def reserved(application_id: str, amount: int, *, when: datetime) -> Event:
    payload = FundsReserved(
        application_id=application_id, command_id=f"{application_id}:reserve", amount=usd(amount)
    )
    return topics.FUNDS_RESERVED, envelope(payload, application_id, when)


def settled(application_id: str, tranche: int, amount: int, *, when: datetime) -> Event:
    payload = DisbursementSettled(
        application_id=application_id,
        command_id=f"{application_id}:pay:{tranche}",
        tranche=tranche,
        amount=usd(amount),
        instruction_id=f"{application_id}:{tranche}",
        finance_reference=f"FIN-{application_id}-{tranche}",
    )
    return topics.DISBURSEMENT_SETTLED, envelope(payload, application_id, when)


def award_adjusted(application_id: str, new_award: int, *, when: datetime, amendment: str) -> Event:
    payload = AwardAdjusted(
        application_id=application_id,
        command_id=f"{application_id}:adjust-award:{amendment}",
        new_award=usd(new_award),
        reserved=usd(new_award),
    )
    return topics.AWARD_ADJUSTED, envelope(payload, application_id, when)


def refund(application_id: str, amount: int, *, when: datetime) -> Event:
    payload = RefundRequested(
        application_id=application_id,
        command_id=f"{application_id}:refund",
        amount=usd(amount),
        reason="underspend",
    )
    return topics.REFUND_REQUESTED, envelope(payload, application_id, when)


def refund_received(
    application_id: str, amount: int, received: int, asked: int, *, when: datetime, reference: str
) -> Event:
    payload = RefundReceived(
        application_id=application_id,
        refund_id=f"{application_id}:refund:underspend",
        amount=usd(amount),
        received=usd(received),
        outstanding=usd(asked - received),
        refund_due=usd(asked - received),
        finance_reference=reference,
    )
    return topics.REFUND_RECEIVED, envelope(payload, application_id, when)


def review(application_id: str, task: str, score_bp: int, *, when: datetime) -> Event:
    payload = ReviewCompleted(
        application_id=application_id,
        round=1,
        task_id=task,
        reviewer_id=f"reviewer-{task}",
        scores=[CriterionScore(criterion="relevance", score=4)],
        weighted_total_bp=score_bp,
        recommendation="approve" if score_bp >= 6000 else "decline",
    )
    return topics.REVIEW_COMPLETED, envelope(payload, application_id, when)


def report_requested(
    application_id: str,
    report_id: str,
    *,
    when: datetime,
    member_id: str = "m-1",
    program: str = "AUPAP",
    due_on: date = date(2027, 7, 30),
    awarded: int = 800_000,
    budget: list[BudgetLine] | None = None,
) -> Event:
    payload = RequestReport(
        # One command per report and due date: an amended request is a new command, a
        # re-sent one (``again``) the same.
        command_id=f"{report_id}:request:{due_on.isoformat()}",
        application_id=application_id,
        report_id=report_id,
        member_id=member_id,
        program_code=program,
        due_on=due_on,
        reminders_at=[datetime.combine(due_on, datetime.min.time(), UTC) - timedelta(days=7)],
        budget_lines=budget or [budget_line("USD", awarded, awarded, "travel")],
        awarded=usd(awarded),
    )
    return topics.REQUEST_REPORT, envelope(payload, application_id, when)


def report_content(**outcomes: int) -> ReportContent:
    return ReportContent(
        participants=ReportParticipants(adults=10, youth=0),
        activities=[ReportActivity(title="Trade mission", held_on=date(2027, 6, 25))],
        outcomes=ReportOutcomes(
            agreements_signed=outcomes.get("agreements_signed", 2),
            trade_leads=outcomes.get("trade_leads", 5),
            jobs_created=outcomes.get("jobs_created", 3),
            students_exchanged=outcomes.get("students_exchanged", 0),
            follow_up_projects=outcomes.get("follow_up_projects", 1),
            narrative="Two MOUs signed.",
        ),
        spending=[
            SpendingLine(category="travel", amount=usd(750_000), converted=usd(750_000)),
        ],
        lessons_learned="Book flights early.",
    )


def report_submitted_event(
    application_id: str,
    report_id: str,
    *,
    when: datetime,
    spent: int = 750_000,
    revision: int = 1,
    **outcomes: int,
) -> Event:
    payload = ReportSubmitted(
        application_id=application_id,
        report_id=report_id,
        member_id="m-1",
        actual_spending=usd(spent),
        revision=revision,
        due_on=date(2027, 7, 30),
        content=report_content(**outcomes),
    )
    return topics.REPORT_SUBMITTED, envelope(payload, application_id, when)


def report_reviewed(
    application_id: str, report_id: str, outcome: str, *, when: datetime, comments: str = ""
) -> Event:
    payload = ReportReviewed(
        application_id=application_id,
        report_id=report_id,
        reviewer_id="demo-reviewer-1",
        outcome=outcome,
        comments=comments,
    )
    return topics.REPORT_REVIEWED, envelope(payload, application_id, when)


def report_overdue(
    application_id: str,
    report_id: str,
    *,
    when: datetime,
    member_id: str = "m-1",
    due_on: date = date(2027, 7, 30),
) -> Event:
    payload = ReportOverdue(
        application_id=application_id, report_id=report_id, member_id=member_id, due_on=due_on
    )
    return topics.REPORT_OVERDUE, envelope(payload, application_id, when)


def withdrawn(application_id: str, *, when: datetime, member_id: str) -> Event:
    payload = ApplicationWithdrawn(
        application_id=application_id, member_id=member_id, reason="the partner cancelled"
    )
    return topics.APPLICATION_WITHDRAWN, envelope(payload, application_id, when)


def again(event: Event, when: datetime | None = None) -> Event:
    """The same fact re-sent under a new event id (a re-emitted result)."""
    topic, original = event
    return topic, original.model_copy(
        update={"event_id": uuid.uuid4(), "occurred_at": when or original.occurred_at}
    )


def history(prefix: str = "") -> list[Event]:
    """Four applications, two programs; duplicates and out-of-order deliveries included.

    ``prefix`` keeps application ids apart when tests share a database.
    """
    a1, a2, a3, a4 = (f"{prefix}A{n}" for n in range(1, 5))
    a1_paid_first = settled(a1, 1, 560_000, when=at("2027-02-01"))
    a1_review = status(a1, 2, "review", when=at("2027-01-12"))
    a3_reserved = reserved(a3, 1_200_000, when=at("2027-03-02"))
    a1_refund_part = refund_received(
        a1, 30_000, 30_000, 50_000, when=at("2027-08-20"), reference="FIN-R1"
    )
    events = [
        # A1: AUPAP, Kenya, awarded 8,000 of 10,000, paid in two tranches, report on time
        # and revised; its expected outcomes are compared with the revision.
        submitted(
            a1,
            when=at("2027-01-10"),
            budget=[
                budget_line("KES", 100_000_000, 770_000, "travel"),
                budget_line("KES", 30_000_000, 230_000, "venue"),
            ],
            expected=PlannedOutcomes(
                agreements_signed=3, trade_leads=4, students_exchanged=0, follow_up_projects=2
            ),
        ),
        status(a1, 1, "screening", when=at("2027-01-10")),
        status(a1, 3, "awarded", when=at("2027-01-20"), awarded=800_000),  # before seq 2
        a1_review,
        a1_review,  # the same event twice
        review(a1, "t-1", 7500, when=at("2027-01-15")),
        review(a1, "t-2", 8500, when=at("2027-01-16")),
        reserved(a1, 800_000, when=at("2027-01-21")),
        a1_paid_first,
        again(a1_paid_first, at("2027-02-02")),  # a duplicate settlement, new event id
        report_requested(a1, f"{prefix}R1", when=at("2027-07-01")),
        report_reviewed(a1, f"{prefix}R1", "approved", when=at("2027-08-01")),  # overtakes it
        # The revision arrives before the first submission; its outcomes are the report's.
        report_submitted_event(
            a1, f"{prefix}R1", when=at("2027-07-28"), revision=2, agreements_signed=3, trade_leads=6
        ),
        report_submitted_event(a1, f"{prefix}R1", when=at("2027-07-25")),
        settled(a1, 2, 240_000, when=at("2027-08-05")),
        refund(a1, 50_000, when=at("2027-08-06")),
        # ... paid back in two parts, the first announced twice (new event id, same receipt).
        a1_refund_part,
        again(a1_refund_part, at("2027-08-21")),
        refund_received(a1, 20_000, 50_000, 50_000, when=at("2027-09-01"), reference="FIN-R2"),
        status(a1, 4, "closed", when=at("2027-08-10")),
        # A2: AUPAP, Nigeria, declined after 30 days: its plan is not compared.
        submitted(
            a2,
            when=at("2027-01-15"),
            member_id="m-2",
            member_name="Shelbyville",
            focus_area="business_and_trade",
            country="NG",
            requested=500_000,
            expected=PlannedOutcomes(agreements_signed=1, trade_leads=2, follow_up_projects=1),
        ),
        status(a2, 2, "declined", when=at("2027-02-14"), member_id="m-2"),
        status(a2, 1, "screening", when=at("2027-01-15"), member_id="m-2"),
        review(a2, "t-3", 4000, when=at("2027-02-10")),
        # A3: YAP-TNA, Mexico, awarded in full, advance paid, report overdue: planned only.
        status(a3, 1, "screening", when=at("2027-02-01"), program="YAP-TNA"),
        submitted(
            a3,
            when=at("2027-02-01"),
            program="YAP-TNA",
            focus_area="youth_and_education",
            country="MX",
            requested=1_200_000,
            budget=[budget_line("MXN", 20_400_000, 1_200_000, "travel")],
            expected=PlannedOutcomes(
                agreements_signed=1, students_exchanged=12, follow_up_projects=1
            ),
        ),
        status(a3, 2, "awarded", when=at("2027-03-01"), program="YAP-TNA", awarded=1_200_000),
        a3_reserved,
        again(a3_reserved),
        settled(a3, 1, 840_000, when=at("2027-03-15")),
        status(a3, 3, "awaiting_report", when=at("2027-07-01"), program="YAP-TNA"),
        report_requested(
            a3, f"{prefix}R3", when=at("2027-07-01"), program="YAP-TNA", awarded=1_200_000
        ),
        report_overdue(a3, f"{prefix}R3", when=at("2027-07-31")),
        # A4: YAP-TNA, Canada, withdrawn after ten days; submitted before expected outcomes
        # travelled with the submission.
        submitted(
            a4,
            when=at("2027-02-10"),
            program="YAP-TNA",
            member_id="m-3",
            member_name="Ogdenville",
            focus_area="youth_and_education",
            country="CA",
            requested=400_000,
            budget=[budget_line("CAD", 540_000, 400_000, "travel")],
        ),
        withdrawn(a4, when=at("2027-02-20"), member_id="m-3"),
        status(a4, 2, "withdrawn", when=at("2027-02-20"), program="YAP-TNA", member_id="m-3"),
    ]
    return events


DAY = 86_400

# Worked out by hand from history(); see the comments there.
EXPECTED: dict[str, Any] = {
    "applications": {
        "all": {
            "applications": 4,
            "decided": 3,
            "awarded": 2,
            "declined": 1,
            "approval_rate_bp": 6666,
            "withdrawn": 1,
            "closed": 3,
            "reviews": 3,
            "mean_score_bp": 6666,
        },
        "AUPAP": {"applications": 2, "decided": 2, "awarded": 1, "approval_rate_bp": 5000},
        "YAP-TNA": {"applications": 2, "decided": 1, "awarded": 1, "approval_rate_bp": 10000},
    },
    "statuses": {"closed": 1, "declined": 1, "awaiting_report": 1, "withdrawn": 1},
    "money_usd": {
        "requested_minor": 3_100_000,
        "awarded_minor": 2_000_000,
        "reserved_minor": 2_000_000,
        "paid_minor": 1_640_000,
        "refunded_minor": 50_000,
        "refund_received_minor": 50_000,
        "released_minor": 0,
        "actual_spending_minor": 750_000,
    },
    "money_by_program": {"AUPAP": 800_000, "YAP-TNA": 1_200_000},  # awarded
    "cycle_times": {
        "decision": {"applications": 3, "mean_seconds": 68 * DAY // 3, "median_seconds": 28 * DAY},
        "first_payment": {
            "applications": 2,
            "mean_seconds": 32 * DAY,
            "median_seconds": 32 * DAY,
        },
        "close": {"applications": 3, "mean_seconds": 84 * DAY, "median_seconds": 30 * DAY},
    },
    "reports": {
        "requested": 2,
        "submitted": 1,
        "on_time": 1,
        "late": 0,
        "overdue_outstanding": 1,
        "approved": 1,
        "changes_requested": 0,
    },
    "outcomes": {
        "reports": 1,
        "agreements_signed": 3,  # as revised
        "trade_leads": 6,
        "jobs_created": 3,
        "students_exchanged": 0,
        "follow_up_projects": 1,
        "adults": 10,
        "youth": 0,
    },
    # (planned, reported, difference) per outcome: A1 planned and reported (its revision),
    # A3 planned only; A2 declined and A4 without a plan are left out.
    "planned_vs_actual": {
        "all": {
            "applications_planned": 2,
            "applications_reported": 1,
            "agreements_signed": (4, 3, 0),
            "trade_leads": (4, 6, 2),
            "students_exchanged": (12, 0, 0),
            "follow_up_projects": (3, 1, -1),
        },
        "AUPAP": {
            "applications_planned": 1,
            "applications_reported": 1,
            "agreements_signed": (3, 3, 0),
            "trade_leads": (4, 6, 2),
            "students_exchanged": (0, 0, 0),
            "follow_up_projects": (2, 1, -1),
        },
        "YAP-TNA": {
            "applications_planned": 1,
            "applications_reported": 0,
            "agreements_signed": (1, None, None),
            "trade_leads": (0, None, None),
            "students_exchanged": (12, None, None),
            "follow_up_projects": (1, None, None),
        },
    },
    "cash_flow": [
        ("2027-02", 0, 560_000),
        ("2027-03", 0, 840_000),
        ("2027-07", 360_000, 0),
        ("2027-08", 0, 240_000),
    ],
    "budget_currencies": {
        ("CAD", "USD"): (540_000, 400_000),
        ("KES", "USD"): (130_000_000, 1_000_000),
        ("MXN", "USD"): (20_400_000, 1_200_000),
        ("USD", "USD"): (500_000, 500_000),
    },
}


def rows_by(table: Any, key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in table.rows}
