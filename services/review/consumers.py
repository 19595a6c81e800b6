"""What the review service consumes: the workflow's review commands, and reports.

The requests and reassignments of one review round share one subject, and the requests
for one report's review another, so that any of them sent again gets every answer about
the round or the report again (``shared.messaging.receipts``).
"""

from __future__ import annotations

from services.review.domain import report_subject, round_subject
from services.review.service import ReviewService
from shared.contracts.topics import (
    REASSIGN_REVIEW,
    REPORT_SUBMITTED,
    REQUEST_REPORT_REVIEW,
    REQUEST_REVIEWS,
)
from shared.contracts.workflows import ReassignReview, RequestReportReview, RequestReviews
from shared.messaging.consumers import Command, ConsumerTable


def about_round(command: RequestReviews | ReassignReview) -> str:
    return round_subject(command.application_id, command.round)


def about_report(command: RequestReportReview) -> str:
    return report_subject(command.application_id, command.report_id)


def consumers(review: ReviewService) -> ConsumerTable:
    return {
        REQUEST_REVIEWS: Command(review.request_reviews, subject=about_round),
        REASSIGN_REVIEW: Command(review.reassign_review, subject=about_round),
        REQUEST_REPORT_REVIEW: Command(review.request_report_review, subject=about_report),
        REPORT_SUBMITTED: review.record_report,
    }
