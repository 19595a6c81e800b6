"""Use cases of the reporting service: one method per action, each over one transaction.

Applicant actions (save a draft, submit) and event handlers (a report requested, overdue,
reviewed; any grants event for analytics) all change state and write the events they cause
through the outbox in the same transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting import persistence as db
from services.reporting.analytics import (
    ANALYTICS_TOPICS,
    AnalyticsTable,
    ApplicationSummary,
    Dimension,
    TableName,
    build_table,
    facts_from_event,
)
from services.reporting.domain import (
    Obligation,
    ReportDraft,
    ReportState,
    checked_draft,
    complete_report,
    is_late,
    overdue_costs_standing,
    total_spending,
)
from shared.auth import Principal, can_see_member
from shared.contracts import topics
from shared.contracts.envelope import Envelope, deterministic_id, new_envelope
from shared.contracts.intake import BudgetLine
from shared.contracts.money import Money
from shared.contracts.reporting import MemberStandingChanged, ReportContent, ReportSubmitted
from shared.contracts.review import ReportReviewed
from shared.contracts.topics import Topic
from shared.contracts.workflows import ReportOverdue, RequestReport
from shared.db import unit_of_work
from shared.messaging.deadletter import PoisonMessage
from shared.messaging.inbox import Inbox
from shared.messaging.outbox import Outbox

logger = logging.getLogger(__name__)

PRODUCER = "reporting"


class ReportNotFoundError(Exception):
    """No such report, or not one the caller may see (404 either way)."""


class ReviewView(BaseModel):
    revision: int
    outcome: str
    comments: str
    reviewed_at: datetime
    reviewer_id: str | None = Field(default=None, description="Shown to program officers only.")


class ReportView(BaseModel):
    report_id: str
    application_id: str
    member_id: str
    program_code: str | None
    state: ReportState
    due_on: date | None
    overdue: bool = Field(description="The workflow marked the report overdue.")
    late: bool | None = Field(description="Submitted after the due date; None before submission.")
    reminders_at: list[datetime]
    budget_lines: list[BudgetLine]
    awarded: Money | None
    revision: int = Field(description="How many times the report was submitted.")
    draft: ReportDraft | None
    submitted: ReportContent | None
    first_submitted_at: datetime | None
    submitted_at: datetime | None
    actual_spending: Money | None = Field(description="Total spending in the award currency.")
    reviews: list[ReviewView]


class ReportPage(BaseModel):
    items: list[ReportView]
    total: int
    limit: int
    offset: int


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _awarded(row: Row[Any]) -> Money | None:
    if row.awarded_minor is None or row.awarded_currency is None:
        return None
    return Money(amount_minor=row.awarded_minor, currency=row.awarded_currency)


def _budget_lines(row: Row[Any]) -> list[BudgetLine]:
    return [BudgetLine.model_validate(line) for line in json.loads(row.budget_lines)]


def _obligation(row: Row[Any]) -> Obligation:
    return Obligation(
        report_id=row.report_id,
        application_id=row.application_id,
        member_id=row.member_id,
        state=ReportState(row.state),
        due_on=row.due_on,
        budget_lines=_budget_lines(row),
        awarded=_awarded(row),
        requested=row.requested_at is not None,
    )


def _view(row: Row[Any], reviews: list[Row[Any]], principal: Principal) -> ReportView:
    first_submitted = _aware(row.first_submitted_at)
    awarded = _awarded(row)
    return ReportView(
        report_id=row.report_id,
        application_id=row.application_id,
        member_id=row.member_id,
        program_code=row.program_code,
        state=ReportState(row.state),
        due_on=row.due_on,
        overdue=row.overdue_since is not None,
        late=None if first_submitted is None else is_late(row.due_on, first_submitted.date()),
        reminders_at=json.loads(row.reminders_at),
        budget_lines=_budget_lines(row),
        awarded=awarded,
        revision=row.revision,
        draft=ReportDraft.model_validate_json(row.draft) if row.draft else None,
        submitted=ReportContent.model_validate_json(row.submitted) if row.submitted else None,
        first_submitted_at=first_submitted,
        submitted_at=_aware(row.submitted_at),
        actual_spending=(
            Money(amount_minor=row.actual_spending_minor, currency=awarded.currency)
            if awarded is not None and row.actual_spending_minor is not None
            else None
        ),
        reviews=[
            ReviewView(
                revision=review.revision,
                outcome=review.outcome,
                comments=review.comments,
                reviewed_at=_aware(review.reviewed_at),
                reviewer_id=review.reviewer_id if principal.is_officer else None,
            )
            for review in reviews
        ],
    )


def _now() -> datetime:
    return datetime.now(UTC)


class ReportingService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        inbox: Callable[[str], Inbox],
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.inbox = inbox
        self.clock = clock

    # --- applicants and officers ---------------------------------------------------------

    async def list_reports(
        self,
        principal: Principal,
        *,
        member_id: str | None = None,
        application_id: str | None = None,
        state: ReportState | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> ReportPage:
        if not principal.is_officer:
            member_id = principal.member_id
        async with self.sessions() as session:
            rows, total = await db.list_reports(
                session,
                member_id=member_id,
                application_id=application_id,
                state=state.value if state else None,
                limit=limit,
                offset=offset,
            )
            reviews = await db.reviews_of(session, [row.report_id for row in rows])
        return ReportPage(
            items=[_view(row, reviews[row.report_id], principal) for row in rows],
            total=total,
            limit=limit,
            offset=offset,
        )

    async def get_report(self, principal: Principal, report_id: str) -> ReportView:
        async with self.sessions() as session:
            row = await self._visible(session, principal, report_id)
            reviews = await db.reviews_of(session, [report_id])
        return _view(row, reviews[report_id], principal)

    async def save_draft(
        self, principal: Principal, report_id: str, draft: ReportDraft
    ) -> ReportView:
        async with unit_of_work(self.sessions) as session:
            row = await self._visible(session, principal, report_id, for_update=True)
            stored = checked_draft(draft, _obligation(row))
            state = ReportState(row.state)
            await db.update_report(
                session,
                report_id,
                draft=stored.model_dump_json(),
                state=ReportState.DRAFT if state is ReportState.REQUESTED else state,
                updated_at=self.clock(),
            )
        return await self.get_report(principal, report_id)

    async def submit(
        self, principal: Principal, report_id: str, draft: ReportDraft | None = None
    ) -> ReportView:
        async with unit_of_work(self.sessions) as session:
            row = await self._visible(session, principal, report_id, for_update=True)
            obligation = _obligation(row)
            if draft is None:
                draft = ReportDraft.model_validate_json(row.draft) if row.draft else ReportDraft()
            now = self.clock()
            content = complete_report(draft, obligation, now.date())
            assert obligation.awarded is not None
            spent = total_spending(content, obligation.awarded.currency)
            revision = row.revision + 1
            await db.update_report(
                session,
                report_id,
                state=ReportState.SUBMITTED,
                draft=checked_draft(draft, obligation).model_dump_json(),
                submitted=content.model_dump_json(),
                revision=revision,
                submitted_at=now,
                first_submitted_at=row.first_submitted_at or now,
                actual_spending_minor=spent.amount_minor,
                standing_lost=False,
                updated_at=now,
            )
            submitted: Envelope[Any] = new_envelope(
                ReportSubmitted(
                    application_id=row.application_id,
                    report_id=report_id,
                    member_id=row.member_id,
                    actual_spending=spent,
                    revision=revision,
                    due_on=row.due_on,
                    content=content,
                ),
                producer=PRODUCER,
                application_id=row.application_id,
                event_id=deterministic_id("reporting", report_id, "submitted", str(revision)),
                correlation_id=row.correlation_id,
                occurred_at=now,
            )
            await self.outbox.add(session, topics.REPORT_SUBMITTED, submitted)
            if row.standing_lost and not await db.other_reports_costing_standing(
                session, row.member_id, report_id
            ):
                await self.outbox.add(
                    session,
                    topics.MEMBER_STANDING_CHANGED,
                    new_envelope(
                        MemberStandingChanged(
                            member_id=row.member_id,
                            good_standing=True,
                            reason="report_received",
                            application_id=row.application_id,
                            as_of=now.date(),
                        ),
                        producer=PRODUCER,
                        application_id=row.application_id,
                        event_id=deterministic_id(
                            "reporting", report_id, "standing-restored", str(revision)
                        ),
                        causation=submitted,
                        occurred_at=now,
                    ),
                )
        return await self.get_report(principal, report_id)

    async def _visible(
        self, session: AsyncSession, principal: Principal, report_id: str, for_update: bool = False
    ) -> Row[Any]:
        row = await db.get_report(session, report_id, for_update=for_update)
        if row is None or not can_see_member(principal, row.member_id):
            raise ReportNotFoundError(report_id)
        return row

    # --- events ----------------------------------------------------------------------------

    async def handle_event(self, topic: Topic, envelope: Envelope[Any]) -> None:
        """Apply one consumed event: to the report obligations, then to analytics."""

        # Analytics first: an event the obligations refuse as poison still counts, as it
        # does when the read model is rebuilt from the topics.
        async def record(session: AsyncSession) -> None:
            await self.record_facts(session, topic.name, envelope)

        await self.inbox("analytics").process(envelope, topic.name, record)

        change = self._obligation_change(topic.name)
        if change is not None:

            async def apply(session: AsyncSession) -> None:
                await change(session, envelope)

            await self.inbox("obligations").process(envelope, topic.name, apply)

    @staticmethod
    async def record_facts(session: AsyncSession, topic_name: str, envelope: Envelope[Any]) -> None:
        changed = await db.add_facts(session, facts_from_event(topic_name, envelope))
        await db.refresh_summaries(session, changed)

    async def _report_requested(
        self, session: AsyncSession, envelope: Envelope[RequestReport]
    ) -> None:
        request = envelope.payload
        row = await db.get_report(session, request.report_id, for_update=True)
        now = self.clock()
        details = {
            "program_code": request.program_code,
            "due_on": request.due_on,
            "reminders_at": json.dumps([moment.isoformat() for moment in request.reminders_at]),
            "budget_lines": json.dumps(
                [line.model_dump(mode="json") for line in request.budget_lines]
            ),
            "awarded_minor": request.awarded.amount_minor,
            "awarded_currency": request.awarded.currency,
            "correlation_id": envelope.correlation_id,
            "updated_at": now,
        }
        if row is None:
            await db.insert_report(
                session,
                report_id=request.report_id,
                application_id=request.application_id,
                member_id=request.member_id,
                state=ReportState.REQUESTED,
                requested_at=now,
                created_at=now,
                **details,
            )
        elif row.requested_at is None:
            await db.update_report(session, request.report_id, requested_at=now, **details)
        elif ReportState(row.state) in (
            ReportState.REQUESTED,
            ReportState.DRAFT,
            ReportState.CHANGES_REQUESTED,
        ):
            # A re-sent or amended request: the latest due date and budget apply.
            await db.update_report(session, request.report_id, **details)
        else:
            logger.info("report %s already %s: request ignored", request.report_id, row.state)

    async def _report_overdue(
        self, session: AsyncSession, envelope: Envelope[ReportOverdue]
    ) -> None:
        notice = envelope.payload
        as_of = envelope.occurred_at.astimezone(UTC).date()
        row = await db.get_report(session, notice.report_id, for_update=True)
        now = self.clock()
        if row is None:
            # The notice overtook the request (another topic): keep it, the request fills in.
            await db.insert_report(
                session,
                report_id=notice.report_id,
                application_id=notice.application_id,
                member_id=notice.member_id,
                state=ReportState.REQUESTED,
                due_on=notice.due_on,
                overdue_since=as_of,
                correlation_id=envelope.correlation_id,
                created_at=now,
                updated_at=now,
            )
            revision, loses_standing = 0, True
        else:
            revision = row.revision
            loses_standing = (
                overdue_costs_standing(ReportState(row.state)) and not row.standing_lost
            )
            await db.update_report(
                session, notice.report_id, overdue_since=row.overdue_since or as_of, updated_at=now
            )
        if not loses_standing:
            return
        await db.update_report(session, notice.report_id, standing_lost=True)
        await self.outbox.add(
            session,
            topics.MEMBER_STANDING_CHANGED,
            new_envelope(
                MemberStandingChanged(
                    member_id=notice.member_id,
                    good_standing=False,
                    reason="report_overdue",
                    application_id=notice.application_id,
                    as_of=as_of,
                ),
                producer=PRODUCER,
                application_id=notice.application_id,
                event_id=deterministic_id(
                    "reporting", notice.report_id, "standing-lost", str(revision)
                ),
                causation=envelope,  # type: ignore[arg-type]
            ),
        )

    async def _report_reviewed(
        self, session: AsyncSession, envelope: Envelope[ReportReviewed]
    ) -> None:
        review = envelope.payload
        row = await db.get_report(session, review.report_id, for_update=True)
        if row is None:
            raise PoisonMessage(f"review of unknown report {review.report_id}")
        if ReportState(row.state) is not ReportState.SUBMITTED:
            logger.info(
                "review of report %s ignored: the report is %s", review.report_id, row.state
            )
            return
        state = (
            ReportState.APPROVED if review.outcome == "approved" else ReportState.CHANGES_REQUESTED
        )
        await db.update_report(session, review.report_id, state=state, updated_at=self.clock())
        await db.add_review(
            session,
            event_id=str(envelope.event_id),
            report_id=review.report_id,
            revision=row.revision,
            reviewer_id=review.reviewer_id,
            outcome=review.outcome,
            comments=review.comments,
            reviewed_at=envelope.occurred_at,
        )

    def _obligation_change(
        self, topic_name: str
    ) -> Callable[[AsyncSession, Envelope[Any]], Awaitable[None]] | None:
        changes: dict[str, Callable[[AsyncSession, Envelope[Any]], Awaitable[None]]] = {
            topics.REQUEST_REPORT.name: self._report_requested,
            topics.REPORT_OVERDUE.name: self._report_overdue,
            topics.REPORT_REVIEWED.name: self._report_reviewed,
        }
        return changes.get(topic_name)

    # --- analytics -------------------------------------------------------------------------

    async def summaries(self, where: db.SummaryFilter | None = None) -> list[ApplicationSummary]:
        async with self.sessions() as session:
            return await db.load_summaries(session, where or db.SummaryFilter())

    async def table(
        self, name: TableName, by: Dimension, where: db.SummaryFilter | None = None
    ) -> AnalyticsTable:
        return build_table(name, await self.summaries(where), by)


CONSUMED_TOPICS: tuple[Topic, ...] = ANALYTICS_TOPICS


def envelope_model(topic: Topic) -> type[Envelope[BaseModel]]:
    """The envelope type of a topic, to parse its messages."""
    return Envelope[topic.payload]  # type: ignore[name-defined]
