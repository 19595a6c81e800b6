"""The workflow's commands: review an application's round, reassign late tasks, review a report.

A command handled before (same ``command_id``) never reaches these use cases: the command
receipts publish its recorded answers again (``shared.messaging.receipts``). What arrives
here is a command seen for the first time, which may still be about a round or a report
that an earlier command created; then whatever was answered about it goes out again too,
since the workflow only asks again about what it has not heard.
"""

from __future__ import annotations

import logging

from services.review.domain import TaskKind, TaskStatus
from services.review.persistence import RequestRow, ReviewStore
from services.review.schemas import ReportView
from services.review.service.staffing import fill_slots, report_short, take_away
from shared.contracts.envelope import Envelope, deterministic_id
from shared.contracts.reporting import ReportSubmitted
from shared.contracts.workflows import ReassignReview, RequestReportReview, RequestReviews
from shared.service import Service, Work

logger = logging.getLogger(__name__)


class ReviewCommands(Service):
    async def request_reviews(self, work: Work, event: Envelope[RequestReviews]) -> None:
        """Create the round's tasks; a round asked about again fills its empty slots only."""
        command = event.payload
        store = ReviewStore(work.session)
        request = await store.round_request(
            command.application_id, command.round, command_id=command.command_id
        )
        if request is None:
            request = await store.add_request(
                {
                    "id": str(
                        deterministic_id(
                            "review-request", command.application_id, "round", str(command.round)
                        )
                    ),
                    "kind": TaskKind.APPLICATION,
                    "command_id": command.command_id,
                    "application_id": command.application_id,
                    "round": command.round,
                    "report_id": None,
                    "member_id": command.member_id,
                    "member_city": command.member_city,
                    "program_code": command.program_code,
                    "focus_area": command.focus_area,
                    "partner_city": command.partner_city,
                    "partner_country": command.partner_country,
                    "blind_review": command.blind_review,
                    "title": command.title,
                    "summary": command.summary,
                    "requested": command.requested.model_dump(mode="json"),
                    "rubric": command.rubric.model_dump(mode="json"),
                    "reviews_needed": command.reviews_needed,
                    "due_at": command.due_at,
                    "received_at": work.now,
                    "correlation_id": event.correlation_id,
                    "application": command.application.model_dump(mode="json")
                    if command.application
                    else None,
                }
            )
        elif command.reviews_needed > request.reviews_needed:
            # An officer asked for another reviewer (the reviewers disagreed too much).
            await store.widen_request(request.id, command.reviews_needed, command.due_at)
            request = await store.request(request.id)
            assert request is not None
        else:
            await self._asked_again(work, request)
        fill = await fill_slots(work, store, request)
        await report_short(work, request, fill, key=str(event.event_id))

    async def reassign_review(self, work: Work, event: Envelope[ReassignReview]) -> None:
        """The deadline passed: move the round's open tasks to other reviewers.

        The late reviewer keeps a task marked ``reassigned`` that it can read but no longer
        submit (409). The workflow asks because it has not heard enough reviews, so those
        already in (lost on their way, perhaps) are published again as well.
        """
        command = event.payload
        store = ReviewStore(work.session)
        request = await store.round_request(command.application_id, command.round)
        if request is None:
            logger.warning(
                "reassignment for %s round %s: no such review request",
                command.application_id,
                command.round,
            )
            return
        late = [
            task
            for task in await store.request_tasks(request.id)
            if task.status is TaskStatus.OPEN and command.task_id in (None, task.id)
        ]
        for task in late:
            await take_away(work, store, request, task, command.reason)
        # With no open task to move (all reviews in, or a recused task nobody could take
        # over), an empty slot is still staffed if someone has become available since.
        fill = await fill_slots(work, store, request)
        await report_short(work, request, fill, key=str(event.event_id))
        await self._asked_again(work, request)

    async def request_report_review(self, work: Work, event: Envelope[RequestReportReview]) -> None:
        """One task for a post-exchange report; a report asked about again fills the slot."""
        command = event.payload
        store = ReviewStore(work.session)
        earlier = await store.report_requests(command.application_id)
        request = await _open_review_of(store, earlier, command)
        if request is not None:
            await self._asked_again(work, request)
        else:
            rounds = [
                r
                for r in await store.application_requests(command.application_id)
                if r.kind is TaskKind.APPLICATION
            ]
            application = rounds[-1] if rounds else None
            round = len(earlier) + 1
            request = await store.add_request(
                {
                    "id": str(
                        deterministic_id(
                            "review-request", command.application_id, "report", str(round)
                        )
                    ),
                    "kind": TaskKind.REPORT,
                    "command_id": command.command_id,
                    "application_id": command.application_id,
                    "round": round,
                    "report_id": command.report_id,
                    "member_id": command.member_id,
                    "member_city": application.member_city if application else None,
                    "program_code": command.program_code,
                    "focus_area": application.focus_area if application else None,
                    "partner_city": application.partner_city if application else None,
                    "partner_country": application.partner_country if application else None,
                    "blind_review": False,
                    "title": f"Post-exchange report: {application.title}"
                    if application
                    else f"Post-exchange report {command.report_id}",
                    "summary": application.summary if application else "",
                    "requested": application.requested if application else None,
                    "rubric": command.rubric.model_dump(mode="json"),
                    "reviews_needed": 1,
                    "due_at": command.due_at,
                    "received_at": work.now,
                    "correlation_id": event.correlation_id,
                    "report": await store.latest_report(command.report_id),
                }
            )
        fill = await fill_slots(work, store, request)
        await report_short(work, request, fill, key=str(event.event_id))

    async def record_report(self, work: Work, event: Envelope[ReportSubmitted]) -> None:
        """Keep a submitted report so that its review shows it, whichever comes first.

        A review not yet done is shown a newer revision; a finished one keeps what it
        reviewed.
        """
        submitted = event.payload
        store = ReviewStore(work.session)
        report = ReportView(
            report_id=submitted.report_id,
            revision=submitted.revision,
            actual_spending=submitted.actual_spending,
            content=submitted.content,
            submitted_at=event.occurred_at,
        ).model_dump(mode="json")
        kept = await store.save_report(
            report_id=submitted.report_id,
            revision=submitted.revision,
            application_id=submitted.application_id,
            report=report,
            at=work.now,
        )
        if not kept:
            return
        for request in await store.report_requests(submitted.application_id):
            if request.report_id != submitted.report_id:
                continue
            shown = int(request.report["revision"]) if request.report else 0
            if shown < submitted.revision and not await store.has_review(request.id):
                await store.show_report(request.id, report)

    async def _asked_again(self, work: Work, request: RequestRow) -> None:
        again = await work.answer_again(request.subject)
        logger.info(
            "%s asked about again (%s %s round %s): %s answer(s) published again",
            request.subject,
            request.kind.value,
            request.application_id,
            request.round,
            again,
        )


async def _open_review_of(
    store: ReviewStore, earlier: list[RequestRow], command: RequestReportReview
) -> RequestRow | None:
    """The request this command is about: its own, or its report's review still pending."""
    for request in earlier:
        if request.command_id == command.command_id or (
            request.report_id == command.report_id and not await store.has_review(request.id)
        ):
            return request
    return None
