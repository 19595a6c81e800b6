"""What the reporting service's HTTP API answers, built from stored rows by ``.of()``."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Self

from pydantic import BaseModel, Field

from services.reporting.domain import ReportDraft, ReportState, is_late
from services.reporting.persistence import (
    ReportRow,
    ReviewRow,
    awarded_of,
    budget_lines_of,
    stored_draft,
)
from shared.auth import Principal
from shared.contracts.intake import BudgetLine
from shared.contracts.money import Money
from shared.contracts.reporting import ReportContent


class ReviewView(BaseModel):
    revision: int
    outcome: str
    comments: str
    reviewed_at: datetime
    reviewer_id: str | None = Field(default=None, description="Shown to program officers only.")

    @classmethod
    def of(cls, review: ReviewRow, principal: Principal) -> Self:
        return cls(
            revision=review.revision,
            outcome=review.outcome,
            comments=review.comments,
            reviewed_at=review.reviewed_at,
            reviewer_id=review.reviewer_id if principal.is_officer else None,
        )


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

    @classmethod
    def of(cls, row: ReportRow, reviews: list[ReviewRow], principal: Principal) -> Self:
        first_submitted: datetime | None = row.first_submitted_at
        awarded = awarded_of(row)
        return cls(
            report_id=row.report_id,
            application_id=row.application_id,
            member_id=row.member_id,
            program_code=row.program_code,
            state=ReportState(row.state),
            due_on=row.due_on,
            overdue=row.overdue_since is not None,
            late=None if first_submitted is None else is_late(row.due_on, first_submitted.date()),
            reminders_at=json.loads(row.reminders_at),
            budget_lines=budget_lines_of(row),
            awarded=awarded,
            revision=row.revision,
            draft=stored_draft(row),
            submitted=ReportContent.model_validate_json(row.submitted) if row.submitted else None,
            first_submitted_at=first_submitted,
            submitted_at=row.submitted_at,
            actual_spending=(
                Money(amount_minor=row.actual_spending_minor, currency=awarded.currency)
                if awarded is not None and row.actual_spending_minor is not None
                else None
            ),
            reviews=[ReviewView.of(review, principal) for review in reviews],
        )


class ReportPage(BaseModel):
    items: list[ReportView]
    total: int
    limit: int
    offset: int
