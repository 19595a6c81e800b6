"""Signals: what the other services tell the lifecycle, through the bridge.

Each signal carries the whole envelope. Duplicates are dropped by event id; an event that
arrives before the lifecycle can use it (a review before its request went out, an
amendment before the exchange is ahead) is kept in state, never dropped. Answers to
commands are filed by command id for the step that waits for them.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from workflows.funding.channel import CommandChannel
from workflows.funding.state import Request

with workflow.unsafe.imports_passed_through():
    from shared.contracts import disbursement
    from shared.contracts.envelope import Envelope
    from shared.contracts.intake import (
        AmendmentRequested,
        ApplicationResubmitted,
        ApplicationWithdrawn,
        PartnerConfirmed,
    )
    from shared.contracts.reporting import ReportSubmitted
    from shared.contracts.review import (
        ReportReviewed,
        ReviewCompleted,
        ReviewerRecused,
        ReviewersShort,
    )
    from workflows.funding import patches
    from workflows.funding.models import (
        EXCHANGE_AHEAD,
        EXCHANGE_OVER,
        NOT_WITHDRAWABLE,
        Stage,
        WithdrawRequest,
    )


class ServiceEvents(CommandChannel):
    def _fresh(self, event: Envelope[Any]) -> bool:
        """First sight of this event for this application (duplicates change nothing)."""
        key = str(event.event_id)
        if key in self._seen:
            return False
        self._seen[key] = None
        return True

    def _mine(self, event: Envelope[Any]) -> bool:
        return bool(event.application_id == self._app.application_id) and self._fresh(event)

    @workflow.signal
    def partner_confirmed(self, event: Envelope[PartnerConfirmed]) -> None:
        if not self._mine(event):
            return
        if self._partner is None:
            self._partner = event.payload
        # Several partners: each answers for itself, known by its contact's address.
        email = event.payload.partner_contact_email.lower()
        self._partner_answers.setdefault(email, event.payload)

    @workflow.signal
    def review_completed(self, event: Envelope[ReviewCompleted]) -> None:
        if self._mine(event):
            review = event.payload
            self._reviews.setdefault(review.round, {}).setdefault(review.task_id, review)

    @workflow.signal
    def reviewer_recused(self, event: Envelope[ReviewerRecused]) -> None:
        # A recusal from a report review is the review service's to staff, not a round's.
        if self._mine(event) and event.payload.report_id is None:
            recusal = event.payload
            self._recusals.setdefault(recusal.round, {}).setdefault(recusal.task_id, recusal)

    @workflow.signal
    def reviewers_short(self, event: Envelope[ReviewersShort]) -> None:
        if self._mine(event) and event.payload.report_id is None:
            self._short.setdefault(event.payload.round, event.payload)

    # -- answers to commands ----------------------------------------------------------------

    def _answer(self, event: Envelope[Any], command_id: str) -> None:
        if self._mine(event):
            self._answers.setdefault(command_id, event)

    @workflow.signal
    def funds_reserved(self, event: Envelope[disbursement.FundsReserved]) -> None:
        self._answer(event, event.payload.command_id)

    @workflow.signal
    def funds_refused(self, event: Envelope[disbursement.FundsRefused]) -> None:
        self._answer(event, event.payload.command_id)

    @workflow.signal
    def funds_released(self, event: Envelope[disbursement.FundsReleased]) -> None:
        """Our own release's answer, or another application's: budget may be free again."""
        released = event.payload
        if event.application_id == self._app.application_id:
            self._answer(event, released.command_id)
        elif (
            released.program_code == self._rules.code
            and released.cycle == self._rules.cycle
            and self._fresh(event)
        ):
            self._budget_freed += 1

    @workflow.signal
    def award_adjusted(self, event: Envelope[disbursement.AwardAdjusted]) -> None:
        self._answer(event, event.payload.command_id)

    @workflow.signal
    def disbursement_settled(self, event: Envelope[disbursement.DisbursementSettled]) -> None:
        self._answer(event, event.payload.command_id)

    @workflow.signal
    def disbursement_failed(self, event: Envelope[disbursement.DisbursementFailed]) -> None:
        self._answer(event, event.payload.command_id)

    @workflow.signal
    def refund_requested(self, event: Envelope[disbursement.RefundRequested]) -> None:
        self._answer(event, event.payload.command_id)

    # -- the applicant, through intake and reporting ------------------------------------------

    @workflow.signal
    def resubmitted(self, event: Envelope[ApplicationResubmitted]) -> None:
        if self._mine(event):
            self._resubmissions.setdefault(event.payload.revision, event.payload)

    @workflow.signal
    def amendment_requested(self, event: Envelope[AmendmentRequested]) -> None:
        if not self._mine(event) or event.payload.amendment_id in self._amendments:
            return
        amendment = event.payload
        self._amendments[amendment.amendment_id] = amendment
        if self._finished:
            return
        waiting = f"amendment {amendment.amendment_id} waits for a decision: {amendment.reason}"
        if self._stage in EXCHANGE_AHEAD | EXCHANGE_OVER and workflow.patched(
            patches.AMENDMENTS_UNTIL_FINAL_PAYMENT
        ):
            # Acknowledged at once: the applicant sees (and is mailed) that it is waiting.
            self._enter(
                self._stage,
                f"amendment {amendment.amendment_id} received; a program officer decides it",
                deadlines=dict(self._deadlines),
                escalation=("amendment_waiting", waiting),
            )
        elif self._stage in EXCHANGE_AHEAD and workflow.patched(patches.AMENDMENT_ESCALATION):
            self._escalate("amendment_waiting", waiting)

    @workflow.signal
    def report_submitted(self, event: Envelope[ReportSubmitted]) -> None:
        if self._mine(event):
            self._reports.setdefault(event.payload.revision, event.payload)

    @workflow.signal
    def report_reviewed(self, event: Envelope[ReportReviewed]) -> None:
        if self._mine(event):
            self._report_reviews.setdefault(self._report_review_revision, event.payload)

    @workflow.signal
    def withdrawn(self, event: Envelope[ApplicationWithdrawn]) -> None:
        """The applicant withdrew through intake; the answer is a status event."""
        if not self._mine(event):
            return
        if self._stage in (Stage.WITHDRAWING, Stage.WITHDRAWN):
            return
        if self._stage in NOT_WITHDRAWABLE or self._finished:
            self._notices.append(f"withdrawal refused: too late in stage {self._stage}")
        elif self._withdrawal is None:
            self._withdrawal = Request(
                WithdrawRequest(reason=event.payload.reason, requested_by=event.payload.member_id)
            )
