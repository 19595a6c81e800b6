"""The stages after the award: the exchange (with amendments), the report and its review.

The wait for the exchange to end is a movable deadline: an approved amendment moves the
dates or changes the award and the wait starts again; a cancelled exchange ends the
lifecycle with a refund of what was paid.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from temporalio import workflow

from workflows.funding.money import MoneyTracking

with workflow.unsafe.imports_passed_through():
    from shared.contracts import topics
    from shared.contracts.envelope import deterministic_id
    from shared.contracts.intake import AmendmentRequested
    from shared.contracts.workflows import ReportOverdue, RequestReport, RequestReportReview
    from workflows.funding import domain
    from workflows.funding.models import Stage


@dataclass
class _Timeline:
    at: datetime
    kind: str


class ExchangeStages(MoneyTracking):
    # -- 7. the exchange ------------------------------------------------------------------

    def _exchange_ends_at(self) -> datetime:
        shortcut = self._rules.demo_exchange_ends_after
        if shortcut is not None and self._exchange_wait_began is not None:
            return self._exchange_wait_began + shortcut
        return domain.end_of_day(self._exchange_end)

    def _report_due_at(self) -> datetime:
        return self._exchange_ends_at() + self._rules.report_due_after

    async def _await_exchange(self) -> bool:
        """Wait for the exchange to end, applying approved amendments; False if cancelled."""
        reason = "the advance is paid; waiting for the exchange to end"
        if self._exchange_wait_began is None:
            self._exchange_wait_began = workflow.now()
        while True:
            if self._approved_for_later:
                amendment = self._approved_for_later.pop(0)
                if amendment.cancel_exchange:
                    await self._cancel_exchange(amendment)
                    return False
                reason = await self._apply_amendment(amendment)
                continue
            ends_at = self._exchange_ends_at()
            self._enter(
                Stage.AWAITING_EXCHANGE,
                reason,
                deadlines={"exchange_ends": ends_at, "report_due": self._report_due_at()},
            )
            if not await self._wait(lambda: self._amendment_decision is not None, until=ends_at):
                return True
            request = self._amendment_decision
            assert request is not None
            self._amendment_decision = None
            decision = request.value
            amendment = self._amendments[decision.amendment_id]
            self._amendments_decided[amendment.amendment_id] = decision.approve
            if not decision.approve:
                request.accept(f"amendment {amendment.amendment_id} refused")
                reason = f"amendment {amendment.amendment_id} refused: {decision.reason}"
                continue
            request.accept(f"amendment {amendment.amendment_id} approved")
            if amendment.cancel_exchange:
                await self._cancel_exchange(amendment)
                return False
            reason = await self._apply_amendment(amendment)

    async def _apply_amendment(self, amendment: AmendmentRequested) -> str:
        changes: list[str] = []
        if amendment.new_exchange_end is not None:
            self._exchange_end = amendment.new_exchange_end
            changes.append(f"exchange now ends {amendment.new_exchange_end}")
        elif amendment.new_exchange_start is not None:
            changes.append(f"exchange now starts {amendment.new_exchange_start}")
        new_award = amendment.new_award
        if new_award is not None and self._award is not None and new_award != self._award:
            changes.append(
                await self._change_award(new_award, amendment.amendment_id, amendment.reason)
            )
        return f"amendment {amendment.amendment_id} approved: " + (
            "; ".join(changes) or "no change"
        )

    async def _apply_award_changes(self) -> None:
        """Before the final payment: the award changes approved after the exchange."""
        while self._approved_for_later:
            amendment = self._approved_for_later.pop(0)
            reason = await self._apply_amendment(amendment)
            self._enter(self._stage, reason)

    async def _cancel_exchange(self, amendment: AmendmentRequested) -> None:
        self._enter(Stage.CANCELLING, f"exchange cancelled: {amendment.reason}")
        paid = self._paid - self._refunded
        if paid.amount_minor > 0:
            await self._refund(paid, "cancelled", f"exchange cancelled: {amendment.reason}")
        await self._release("cancelled", f"exchange cancelled: {amendment.reason}")
        self._enter(
            Stage.CANCELLED,
            f"exchange cancelled: {amendment.reason}"
            + (f"; refund of {paid} requested" if paid.amount_minor > 0 else ""),
        )

    # -- 8-9. the report ------------------------------------------------------------------

    async def _collect_report(self) -> None:
        rules = self._rules
        due = self._report_due_at()
        timeline = sorted(
            [_Timeline(due - offset, "before") for offset in rules.report_reminders_before]
            + [_Timeline(due + offset, "after") for offset in rules.report_reminders_after]
            + [_Timeline(due + rules.report_overdue_after, "overdue")],
            key=lambda point: (point.at, point.kind == "overdue"),
        )
        self._enter(
            Stage.REPORT_DUE,
            "the exchange has ended: the post-exchange report is requested",
            deadlines={"report_due": due},
            action=f"submit the post-exchange report by {due:%Y-%m-%d %H:%M} UTC",
        )
        command = self._send(
            topics.REQUEST_REPORT,
            "report",
            RequestReport(
                command_id=self._command_id("report"),
                application_id=self._app.application_id,
                report_id=self._report_id,
                member_id=self._app.member_id,
                program_code=rules.code,
                due_on=due.date(),
                reminders_at=[point.at for point in timeline if point.kind != "overdue"],
                budget_lines=(
                    self._resubmissions[self._revision].budget_lines
                    if self._revision in self._resubmissions
                    else self._app.budget_lines
                ),
                awarded=self._award or self._zero,
            ),
        )

        def received() -> bool:
            return bool(self._reports)

        for point in timeline:
            if await self._wait(received, until=point.at):
                break
            if point.kind == "before":
                self._remind("report_due", due, f"the report is due on {due:%Y-%m-%d}")
            elif point.kind == "after":
                self._remind("report_overdue", due, f"the report was due on {due:%Y-%m-%d}")
            else:
                self._declare_report_overdue(due)
        else:
            await self._wait(received)
        command.closed = True

    @property
    def _report_id(self) -> str:
        return str(deterministic_id(self._wid, "report"))

    def _declare_report_overdue(self, due: datetime) -> None:
        self._publish(
            topics.REPORT_OVERDUE,
            ReportOverdue(
                application_id=self._app.application_id,
                report_id=self._report_id,
                member_id=self._app.member_id,
                due_on=due.date(),
            ),
            "report-overdue",
            str(self._sequence),
        )
        self._enter(
            Stage.REPORT_OVERDUE,
            "the report is overdue: the member loses good standing and the final tranche "
            "is on hold until it arrives",
            deadlines={"report_due": due},
            action="submit the post-exchange report now",
            escalation=(
                "report_overdue",
                f"the report due on {due:%Y-%m-%d} has not arrived; "
                f"{self._app.member_name} has lost good standing",
            ),
        )

    def _report_reviewed(self, revision: int) -> bool:
        return revision in self._report_reviews

    def _report_revised(self, revision: int) -> bool:
        return any(number > revision for number in self._reports)

    async def _review_report(self) -> None:
        rules = self._rules
        revision = max(self._reports)
        was_overdue = self._stage is Stage.REPORT_OVERDUE
        while True:
            report = self._reports[revision]
            due = workflow.now() + rules.report_review_period
            note = "; good standing restored" if was_overdue else ""
            self._enter(
                Stage.REPORT_REVIEW,
                f"report revision {revision} received{note}",
                deadlines={"report_review_due": due},
            )
            self._report_review_revision = revision
            command = self._send(
                topics.REQUEST_REPORT_REVIEW,
                "report-review",
                RequestReportReview(
                    command_id=self._command_id("report-review", str(revision)),
                    application_id=self._app.application_id,
                    report_id=report.report_id,
                    member_id=self._app.member_id,
                    program_code=rules.code,
                    due_at=due,
                    rubric=rules.report_rubric,
                ),
            )
            await self._wait(functools.partial(self._report_reviewed, revision))
            command.closed = True
            review = self._report_reviews[revision]
            if review.outcome == "approved":
                self._actual_spending = report.actual_spending
                return
            changes_due = workflow.now() + rules.report_changes_period
            self._enter(
                Stage.REPORT_CHANGES_REQUESTED,
                f"changes requested: {review.comments or 'see the reviewer comments'}",
                deadlines={"report_changes_due": changes_due},
                action=f"revise the report by {changes_due:%Y-%m-%d %H:%M} UTC",
            )

            was_overdue = False
            revised = functools.partial(self._report_revised, revision)
            if not await self._wait(revised, until=changes_due):
                self._remind("report_changes_due", changes_due, "the revised report is overdue")
                self._declare_report_overdue(changes_due)
                was_overdue = True
                await self._wait(revised)
            revision = max(number for number in self._reports if number > revision)
