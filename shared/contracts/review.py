"""Payloads published by the review service."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.contracts.base import Contract


class CriterionScore(Contract):
    criterion: str
    score: int


class ReviewCompleted(Contract):
    application_id: str
    round: int = Field(ge=1)
    task_id: str
    reviewer_id: str
    scores: list[CriterionScore]
    weighted_total_bp: int = Field(
        ge=0, le=10_000, description="Weighted total in basis points of the maximum."
    )
    recommendation: Literal["approve", "decline", "revise"]
    comments: str = ""


class ReviewerRecused(Contract):
    application_id: str
    round: int = Field(ge=1)
    task_id: str
    reviewer_id: str
    reason: str
    replacement_task_id: str | None = None
    report_id: str | None = Field(
        default=None, description="Set when the task was a post-exchange report review."
    )


class ReviewersShort(Contract):
    application_id: str
    round: int = Field(ge=1)
    needed: int
    assigned: int
    report_id: str | None = Field(
        default=None, description="Set when the reviewers are short for a report review."
    )


class ReportReviewed(Contract):
    application_id: str
    report_id: str
    reviewer_id: str
    outcome: Literal["approved", "changes_requested"]
    comments: str = ""
