"""Demo data for the embedded stack: the demo member's report from an earlier grant.

``grantflow up`` prints a token for the member ``demo-member-1``; with this seeded, that
token sees an approved report (with its review) before any application of its own has
run through a cycle. The report predates the event history, so analytics leave it out.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from services.reporting.domain import ReportDraft, ReportState
from services.reporting.persistence import ReportingStore
from shared.contracts.intake import BudgetLine
from shared.contracts.money import Money
from shared.contracts.reporting import (
    ReportActivity,
    ReportContent,
    ReportOutcomes,
    ReportParticipants,
    SpendingLine,
)
from shared.service import Work

DEMO_MEMBER = "demo-member-1"
DEMO_REPORT = "demo-report-2026-1"
DEMO_APPLICATION = "demo-application-2026-1"


def _usd(amount_minor: int) -> Money:
    return Money(amount_minor=amount_minor, currency="USD")


def demo_report() -> ReportContent:
    return ReportContent(
        participants=ReportParticipants(adults=6, youth=4),
        activities=[
            ReportActivity(
                title="Business delegation to the sister city",
                held_on=date(2026, 5, 11),
                ends_on=date(2026, 5, 15),
                description="Meetings with the chamber of commerce and two port authorities.",
            )
        ],
        outcomes=ReportOutcomes(
            agreements_signed=1,
            trade_leads=7,
            jobs_created=2,
            students_exchanged=4,
            follow_up_projects=1,
            narrative="An MOU on port logistics was signed; a return visit is planned.",
        ),
        spending=[
            SpendingLine(
                category="travel",
                description="Flights for ten",
                amount=_usd(1_150_000),
                converted=_usd(1_150_000),
            ),
            SpendingLine(
                category="hosting",
                description="Venues and interpreters",
                amount=_usd(320_000),
                converted=_usd(320_000),
            ),
        ],
        lessons_learned="Book interpreters a month ahead; youth delegates need consent forms.",
    )


async def seed_demo(work: Work) -> bool:
    """Add the demo report unless it is there; True if it was added."""
    store = ReportingStore(work.session)
    if await store.report(DEMO_REPORT) is not None:
        return False
    content = demo_report()
    budget = [
        BudgetLine(category=category, description=description, amount=amount, converted=amount)
        for category, description, amount in (
            ("travel", "Flights", _usd(1_200_000)),
            ("hosting", "Venues", _usd(300_000)),
        )
    ]
    submitted_at = datetime(2026, 6, 20, 14, 0, tzinfo=UTC)
    await store.add_report(
        report_id=DEMO_REPORT,
        application_id=DEMO_APPLICATION,
        member_id=DEMO_MEMBER,
        program_code="CITIZEN",
        state=ReportState.APPROVED,
        due_on=date(2026, 6, 30),
        budget_lines=json.dumps([line.model_dump(mode="json") for line in budget]),
        awarded_minor=1_500_000,
        awarded_currency="USD",
        requested_at=datetime(2026, 5, 16, tzinfo=UTC),
        draft=ReportDraft.of(content).model_dump_json(),
        submitted=content.model_dump_json(),
        revision=1,
        first_submitted_at=submitted_at,
        submitted_at=submitted_at,
        actual_spending_minor=1_470_000,
        created_at=datetime(2026, 5, 16, tzinfo=UTC),
        updated_at=datetime(2026, 7, 2, tzinfo=UTC),
    )
    await store.add_review(
        event_id="00000000-0000-5000-8000-000000000001",
        report_id=DEMO_REPORT,
        revision=1,
        reviewer_id="demo-reviewer-1",
        outcome="approved",
        comments="Complete, and spending matches the budget.",
        reviewed_at=datetime(2026, 7, 2, tzinfo=UTC),
    )
    return True
