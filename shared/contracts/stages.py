"""The lifecycle stages the workflow publishes in ``grants.application.status_changed.v1``.

One vocabulary for the producer (the workflow) and for the services that read status
events (intake's status read model, reporting's analytics).
"""

from enum import StrEnum


class Stage(StrEnum):
    SUBMITTED = "submitted"
    SCREENING = "screening"
    PARTNER_CONFIRMATION = "partner_confirmation"
    PARTNER_UNCONFIRMED = "partner_unconfirmed"
    REVIEW = "review"
    REVIEWERS_SHORT = "reviewers_short"
    REVISION_REQUESTED = "revision_requested"
    DECLINED = "declined"
    AWARDED = "awarded"
    FUNDS_RESERVATION = "funds_reservation"
    WAITLISTED = "waitlisted"
    ADVANCE_PAYMENT = "advance_payment"
    PAYMENT_ESCALATED = "payment_escalated"
    AWAITING_EXCHANGE = "awaiting_exchange"
    REPORT_DUE = "report_due"
    REPORT_OVERDUE = "report_overdue"
    REPORT_REVIEW = "report_review"
    REPORT_CHANGES_REQUESTED = "report_changes_requested"
    FINAL_PAYMENT = "final_payment"
    CLOSING = "closing"
    WITHDRAWING = "withdrawing"
    CANCELLING = "cancelling"
    # Final stages: the workflow has ended in one of these.
    CLOSED = "closed"
    INELIGIBLE = "ineligible"
    REVISION_LAPSED = "revision_lapsed"
    WAITLIST_EXPIRED = "waitlist_expired"
    CANCELLED = "cancelled"
    WITHDRAWN = "withdrawn"


FINAL_STAGES = frozenset(
    {
        Stage.CLOSED,
        Stage.INELIGIBLE,
        Stage.REVISION_LAPSED,
        Stage.WAITLIST_EXPIRED,
        Stage.CANCELLED,
        Stage.WITHDRAWN,
    }
)
# Withdrawal undoes what was done until close-out starts.

# No longer an open application of its program cycle: the member may apply again.
NOT_OPEN_STAGES = FINAL_STAGES | {Stage.DECLINED}
