"""Payloads published by the review service."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.contracts.base import (
    ApplicationId,
    Contract,
    LongText,
    Reason,
    ReportId,
    ReviewerId,
    Round,
    TaskId,
)
from shared.contracts.programs import CriterionName, Score


class CriterionScore(Contract):
    criterion: CriterionName
    score: Score


class ReviewCompleted(Contract):
    application_id: ApplicationId
    round: Round
    task_id: TaskId
    reviewer_id: ReviewerId
    scores: list[CriterionScore] = Field(max_length=50)
    weighted_total_bp: int = Field(
        ge=0, le=10_000, description="Weighted total in basis points of the maximum."
    )
    recommendation: Literal["approve", "decline", "revise"]
    comments: LongText = ""


class ReviewerRecused(Contract):
    application_id: ApplicationId
    round: Round
    task_id: TaskId
    reviewer_id: ReviewerId
    reason: Reason
    replacement_task_id: TaskId | None = None
    report_id: ReportId | None = Field(
        default=None, description="Set when the task was a post-exchange report review."
    )


class ReviewersShort(Contract):
    application_id: ApplicationId
    round: Round
    needed: int = Field(ge=0, le=1000)
    assigned: int = Field(ge=0, le=1000)
    report_id: ReportId | None = Field(
        default=None, description="Set when the reviewers are short for a report review."
    )


class ReportReviewed(Contract):
    application_id: ApplicationId
    report_id: ReportId
    reviewer_id: ReviewerId
    outcome: Literal["approved", "changes_requested"]
    comments: LongText = ""
