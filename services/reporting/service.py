"""Use cases of the reporting service: one method per action, over the caller's unit of work.

Applicant actions (save a draft, submit) and consumed events (a report requested, overdue,
reviewed; any grants event for analytics) change state and write the events they cause
through the outbox of the same unit of work. None of them commits: whoever opened the work
(a route, the consumer) does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC
from typing import Any

from services.reporting.analytics.facts import facts_from_event
from services.reporting.analytics.summaries import ApplicationSummary
from services.reporting.analytics.tables import AnalyticsTable, Dimension, TableName, build_table
from services.reporting.domain import (
    EDITABLE_STATES,
    ReportDraft,
    ReportState,
    checked_draft,
    complete_report,
    overdue_costs_standing,
    report_subject,
    total_spending,
)
from services.reporting.persistence import (
    ReportFilter,
    ReportingStore,
    ReportRow,
    SummaryFilter,
    obligation_of,
    stored_draft,
)
from services.reporting.schemas import ReportPage, ReportView
from shared.auth import Principal, can_see_member
from shared.contracts import topics
from shared.contracts.envelope import Envelope, deterministic_id
from shared.contracts.reporting import MemberStandingChanged, ReportSubmitted
from shared.contracts.review import ReportReviewed
from shared.contracts.workflows import ReportOverdue, RequestReport
from shared.errors import InvalidCommandError, NotFoundError
from shared.service import Service, Work

logger = logging.getLogger(__name__)


async def _standing_changed(
    work: Work,
    change: MemberStandingChanged,
    *,
    application_id: str,
    report_id: str,
    revision: int,
    subject: str | None = None,
) -> None:
    """Tell intake a report moved a member's standing: once per revision and direction."""
    direction = "standing-restored" if change.good_standing else "standing-lost"
    await work.publish(
        topics.MEMBER_STANDING_CHANGED,
        change,
        application_id=application_id,
        event_id=deterministic_id("reporting", report_id, direction, str(revision)),
        subject=subject,
    )


class ReportingService(Service):
    # Applicants and officers ------------------------------------------------------------

    async def list_reports(
        self,
        work: Work,
        principal: Principal,
        where: ReportFilter,
        *,
        limit: int = 50,
        offset: int = 0,
    ) -> ReportPage:
        if not principal.is_officer:
            where = dataclasses.replace(where, member_id=principal.member_id)
        store = ReportingStore(work.session)
        rows, total = await store.reports(where, limit=limit, offset=offset)
        reviews = await store.reviews_of([row.report_id for row in rows])
        return ReportPage(
            items=[ReportView.of(row, reviews[row.report_id], principal) for row in rows],
            total=total,
            limit=limit,
            offset=offset,
        )

    async def report(self, work: Work, principal: Principal, report_id: str) -> ReportView:
        store = ReportingStore(work.session)
        row = await self._visible(store, principal, report_id)
        reviews = await store.reviews_of([report_id])
        return ReportView.of(row, reviews[report_id], principal)

    async def save_draft(
        self, work: Work, principal: Principal, report_id: str, draft: ReportDraft
    ) -> ReportView:
        store = ReportingStore(work.session)
        row = await self._visible(store, principal, report_id, for_update=True)
        stored = checked_draft(draft, obligation_of(row))
        state = ReportState(row.state)
        await store.update_report(
            report_id,
            draft=stored.model_dump_json(),
            state=ReportState.DRAFT if state is ReportState.REQUESTED else state,
            updated_at=work.now,
        )
        return await self.report(work, principal, report_id)

    async def submit(
        self, work: Work, principal: Principal, report_id: str, draft: ReportDraft | None = None
    ) -> ReportView:
        """Submit the report; the event is filed as an answer to the report's request."""
        store = ReportingStore(work.session)
        row = await self._visible(store, principal, report_id, for_update=True)
        obligation = obligation_of(row)
        if draft is None:
            draft = stored_draft(row) or ReportDraft()
        content = complete_report(draft, obligation, work.now.date())
        assert obligation.awarded is not None
        spent = total_spending(content, obligation.awarded.currency)
        revision = row.revision + 1
        await store.update_report(
            report_id,
            state=ReportState.SUBMITTED,
            draft=checked_draft(draft, obligation).model_dump_json(),
            submitted=content.model_dump_json(),
            revision=revision,
            submitted_at=work.now,
            first_submitted_at=row.first_submitted_at or work.now,
            actual_spending_minor=spent.amount_minor,
            standing_lost=False,
            updated_at=work.now,
        )
        # Filed under the report's subject: a request for the report sent again after this
        # (the workflow heard nothing) gets the submission again, with the same event id.
        subject = report_subject(report_id)
        submitted = await work.publish(
            topics.REPORT_SUBMITTED,
            ReportSubmitted(
                application_id=row.application_id,
                report_id=report_id,
                member_id=row.member_id,
                actual_spending=spent,
                revision=revision,
                due_on=row.due_on,
                content=content,
            ),
            application_id=row.application_id,
            event_id=deterministic_id("reporting", report_id, "submitted", str(revision)),
            subject=subject,
            correlation_id=row.correlation_id,
        )
        if row.standing_lost and not await store.other_reports_costing_standing(
            row.member_id, report_id
        ):
            await _standing_changed(
                dataclasses.replace(work, cause=submitted),
                MemberStandingChanged(
                    member_id=row.member_id,
                    good_standing=True,
                    reason="report_received",
                    application_id=row.application_id,
                    as_of=work.now.date(),
                ),
                application_id=row.application_id,
                report_id=report_id,
                revision=revision,
                subject=subject,
            )
        return await self.report(work, principal, report_id)

    async def _visible(
        self,
        store: ReportingStore,
        principal: Principal,
        report_id: str,
        *,
        for_update: bool = False,
    ) -> ReportRow:
        row = await store.report(report_id, for_update=for_update)
        if row is None or not can_see_member(principal, row.member_id):
            raise NotFoundError("report not found")
        return row

    # Consumed events ----------------------------------------------------------------------

    async def count(self, work: Work, event: Envelope[Any]) -> None:
        """Add what the event records to the analytics."""
        await ReportingStore(work.session).record(facts_from_event(event))

    async def request_report(self, work: Work, event: Envelope[RequestReport]) -> None:
        await self.count(work, event)
        request = event.payload
        store = ReportingStore(work.session)
        row = await store.report(request.report_id, for_update=True)
        details = {
            "program_code": request.program_code,
            "due_on": request.due_on,
            "reminders_at": json.dumps([moment.isoformat() for moment in request.reminders_at]),
            "budget_lines": json.dumps(
                [line.model_dump(mode="json") for line in request.budget_lines]
            ),
            "awarded_minor": request.awarded.amount_minor,
            "awarded_currency": request.awarded.currency,
            "correlation_id": event.correlation_id,
            "updated_at": work.now,
        }
        if row is None:
            await self._open_report(work, store, event, requested_at=work.now, **details)
        elif row.requested_at is None:
            await store.update_report(request.report_id, requested_at=work.now, **details)
        elif ReportState(row.state) in EDITABLE_STATES:
            # A request for a report still being written: its latest due date and budget apply.
            await store.update_report(request.report_id, **details)
        else:
            logger.info("report %s already %s: request ignored", request.report_id, row.state)

    async def report_overdue(self, work: Work, event: Envelope[ReportOverdue]) -> None:
        await self.count(work, event)
        notice = event.payload
        as_of = event.occurred_at.astimezone(UTC).date()
        store = ReportingStore(work.session)
        row = await store.report(notice.report_id, for_update=True)
        if row is None:
            # The notice overtook the request (another topic): keep it, the request fills in.
            await self._open_report(
                work,
                store,
                event,
                due_on=notice.due_on,
                overdue_since=as_of,
                correlation_id=event.correlation_id,
                updated_at=work.now,
            )
            revision, loses_standing = 0, True
        else:
            revision = row.revision
            loses_standing = (
                overdue_costs_standing(ReportState(row.state)) and not row.standing_lost
            )
            await store.update_report(
                notice.report_id, overdue_since=row.overdue_since or as_of, updated_at=work.now
            )
        if not loses_standing:
            return
        await store.update_report(notice.report_id, standing_lost=True)
        lost = MemberStandingChanged(
            member_id=notice.member_id,
            good_standing=False,
            reason="report_overdue",
            application_id=notice.application_id,
            as_of=as_of,
        )
        await _standing_changed(
            work,
            lost,
            application_id=notice.application_id,
            report_id=notice.report_id,
            revision=revision,
        )

    @staticmethod
    async def _open_report(
        work: Work,
        store: ReportingStore,
        event: Envelope[RequestReport] | Envelope[ReportOverdue],
        **values: Any,
    ) -> None:
        """The obligation of a report first heard of, from its request or an overdue notice."""
        about = event.payload
        await store.add_report(
            report_id=about.report_id,
            application_id=about.application_id,
            member_id=about.member_id,
            state=ReportState.REQUESTED,
            created_at=work.now,
            **values,
        )

    async def report_reviewed(self, work: Work, event: Envelope[ReportReviewed]) -> None:
        await self.count(work, event)
        review = event.payload
        store = ReportingStore(work.session)
        row = await store.report(review.report_id, for_update=True)
        if row is None:
            raise InvalidCommandError(f"review of unknown report {review.report_id}")
        if ReportState(row.state) is not ReportState.SUBMITTED:
            logger.info(
                "review of report %s ignored: the report is %s", review.report_id, row.state
            )
            return
        state = (
            ReportState.APPROVED if review.outcome == "approved" else ReportState.CHANGES_REQUESTED
        )
        await store.update_report(review.report_id, state=state, updated_at=work.now)
        await store.add_review(
            event_id=str(event.event_id),
            report_id=review.report_id,
            revision=row.revision,
            reviewer_id=review.reviewer_id,
            outcome=review.outcome,
            comments=review.comments,
            reviewed_at=event.occurred_at,
        )

    # Analytics ----------------------------------------------------------------------------

    async def summaries(
        self, work: Work, where: SummaryFilter | None = None
    ) -> list[ApplicationSummary]:
        return await ReportingStore(work.session).summaries(where or SummaryFilter())

    async def table(
        self, work: Work, name: TableName, by: Dimension, where: SummaryFilter | None = None
    ) -> AnalyticsTable:
        return build_table(name, await self.summaries(work, where), by)
