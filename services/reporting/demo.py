"""Demo data for the embedded stack: the demo member's report from an earlier grant.

``grantflow up`` prints a token for the member ``demo-member-1``; with this seeded, that
token sees an approved report (with its review) before any application of its own has
run through a cycle. The report predates the event history, so analytics leave it out.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting import persistence as db
from services.reporting.domain import ReportDraft, ReportState, SpendingEntry
from shared.contracts.intake import BudgetLine
from shared.contracts.money import Money
from shared.contracts.reporting import (
    ReportActivity,
    ReportContent,
    ReportOutcomes,
    ReportParticipants,
    SpendingLine,
)
from shared.db import unit_of_work

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


async def seed_demo(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """Add the demo report unless it is there; True if it was added."""
    async with unit_of_work(sessions) as session:
        if await db.get_report(session, DEMO_REPORT) is not None:
            return False
        content = demo_report()
        draft = ReportDraft(
            participants=content.participants,
            activities=content.activities,
            outcomes=content.outcomes,
            spending=[
                SpendingEntry(
                    category=line.category,
                    description=line.description,
                    amount=line.amount,
                    converted=line.converted,
                )
                for line in content.spending
            ],
            lessons_learned=content.lessons_learned,
        )
        budget = [
            BudgetLine(
                category="travel",
                description="Flights",
                amount=_usd(1_200_000),
                converted=_usd(1_200_000),
            ),
            BudgetLine(
                category="hosting",
                description="Venues",
                amount=_usd(300_000),
                converted=_usd(300_000),
            ),
        ]
        submitted_at = datetime(2026, 6, 20, 14, 0, tzinfo=UTC)
        await db.insert_report(
            session,
            report_id=DEMO_REPORT,
            application_id=DEMO_APPLICATION,
            member_id=DEMO_MEMBER,
            program_code="CITIZEN",
            state=ReportState.APPROVED,
            due_on=date(2026, 6, 30),
            budget_lines="[" + ",".join(line.model_dump_json() for line in budget) + "]",
            awarded_minor=1_500_000,
            awarded_currency="USD",
            requested_at=datetime(2026, 5, 16, tzinfo=UTC),
            draft=draft.model_dump_json(),
            submitted=content.model_dump_json(),
            revision=1,
            first_submitted_at=submitted_at,
            submitted_at=submitted_at,
            actual_spending_minor=1_470_000,
            created_at=datetime(2026, 5, 16, tzinfo=UTC),
            updated_at=datetime(2026, 7, 2, tzinfo=UTC),
        )
        await db.add_review(
            session,
            event_id="00000000-0000-5000-8000-000000000001",
            report_id=DEMO_REPORT,
            revision=1,
            reviewer_id="demo-reviewer-1",
            outcome="approved",
            comments="Complete, and spending matches the budget.",
            reviewed_at=datetime(2026, 7, 2, tzinfo=UTC),
        )
    return True
