"""What the review service's HTTP API accepts and answers.

Inputs refuse unknown fields (a typo is a 422 naming the field, not silently dropped).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictBool

from services.review.domain import (
    RECOMMENDATIONS,
    WITHHELD,
    Spread,
    TaskKind,
    TaskStatus,
    Workload,
    empty_slots,
    withhold,
)
from services.review.persistence import (
    RequestRow,
    ReviewerRow,
    ReviewRow,
    TaskRecord,
    TaskRow,
)
from shared.contracts.base import EMAIL_PATTERN, WholeNumber, whole_number
from shared.contracts.money import Money
from shared.contracts.programs import CriterionName, Rubric
from shared.contracts.reporting import ReportContent
from shared.contracts.workflows import ApplicationForReview, PartnerForReview
from shared.views import View, copy_of

ReviewerId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
Email = Annotated[str, Field(pattern=EMAIL_PATTERN, max_length=254)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(frozen=True)


class Copied(View):
    """An output whose fields are its record's: ``of(record)`` builds it."""

    model_config = ConfigDict(frozen=True)


# ---------------------------------------------------------------- reviewers


class Expertise(Input):
    programs: list[ShortText] = Field(default_factory=list, examples=[["AUPAP", "CITIZEN"]])
    focus_areas: list[ShortText] = Field(default_factory=list, examples=[["community_development"]])
    regions: list[CountryCode] = Field(
        default_factory=list, description="Partner countries (ISO-3166 alpha-2) it knows."
    )
    languages: list[ShortText] = Field(default_factory=list, examples=[["en", "fr"]])


class Conflicts(Input):
    members: list[ShortText] = Field(
        default_factory=list, description="Member ids the reviewer must never review."
    )
    cities: list[ShortText] = Field(
        default_factory=list,
        description="Cities (member or partner) the reviewer must never review.",
    )


class ReviewerIn(Input):
    id: ReviewerId
    name: Annotated[str, Field(min_length=1, max_length=200)]
    email: Email
    home_city: ShortText = Field(description="The member city the reviewer lives in.")
    home_country: CountryCode | None = None
    expertise: Expertise = Field(default_factory=Expertise)
    capacity: WholeNumber = Field(default=5, ge=0, le=500, description="Most open tasks at once.")
    active: StrictBool = True
    conflicts: Conflicts = Field(default_factory=Conflicts)


# Bounds before the whole-number validator, or the schema loses them (as "ge" and "le").
Capacity = Annotated[int, Field(ge=0, le=500), Strict(), BeforeValidator(whole_number)]


class ReviewerPatch(Input):
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    email: Email | None = None
    home_city: ShortText | None = None
    home_country: CountryCode | None = None
    expertise: Expertise | None = None
    capacity: Capacity | None = None
    active: StrictBool | None = None
    conflicts: Conflicts | None = None


class Recusal(Copied):
    task_id: str
    application_id: str
    reason: str
    recorded_at: datetime


class ReviewerOut(Output):
    id: str
    name: str
    email: str
    home_city: str
    home_country: str | None
    expertise: dict[str, list[str]]
    capacity: int
    active: bool
    conflicts: dict[str, list[str]]
    open_tasks: int
    recusals: list[Recusal] = Field(default_factory=list)

    @classmethod
    def of(
        cls, row: ReviewerRow, open_tasks: int, recusals: list[Recusal] | None = None
    ) -> ReviewerOut:
        return copy_of(
            cls,
            row,
            expertise={
                "programs": row.programs,
                "focus_areas": row.focus_areas,
                "regions": row.regions,
                "languages": row.languages,
            },
            conflicts={"members": row.conflict_members, "cities": row.conflict_cities},
            open_tasks=open_tasks,
            recusals=recusals or [],
        )


# ---------------------------------------------------------------- tasks


class ReportView(Output):
    """A post-exchange report as the reporting service published it."""

    report_id: str
    revision: int
    actual_spending: Money
    content: ReportContent | None = Field(
        description="The report itself; empty only for reports published before it was carried."
    )
    submitted_at: datetime


class ApplicationView(Output):
    application_id: str
    identity_withheld: bool = Field(description="True for blind review: who applied is hidden.")
    member_id: str | None
    member_city: str | None
    program_code: str
    focus_area: str | None
    partner_city: str | None
    partner_country: str | None
    title: str
    summary: str
    requested: Money | None
    report_id: str | None = None
    report: ReportView | None = Field(
        default=None,
        description="For a report review: the report, in the newest revision received.",
    )
    details: ApplicationForReview | None = Field(
        default=None,
        description="The plan and its money: dates, delegation, partners, budget lines, "
        "matching funds (blind review withholds the cities' names). Empty for requests made "
        "before the workflow carried it.",
    )

    @classmethod
    def of(cls, request: RequestRow, *, officer: bool) -> ApplicationView:
        blind = request.blind_review and not officer
        details = (
            ApplicationForReview.model_validate(request.application)
            if request.application
            else None
        )
        names = (
            request.member_city,
            request.partner_city,
            request.member_id,
            *(partner.name for partner in (details.partners if details else [])),
        )
        return copy_of(
            cls,
            request,
            identity_withheld=blind,
            member_id=None if blind else request.member_id,
            member_city=None if blind else request.member_city,
            partner_city=None if blind else request.partner_city,
            title=withhold(request.title, names) if blind else request.title,
            summary=withhold(request.summary, names) if blind else request.summary,
            requested=Money.model_validate(request.requested) if request.requested else None,
            report=ReportView.model_validate(request.report) if request.report else None,
            details=_withheld(details, names) if blind and details else details,
        )


def _withheld(details: ApplicationForReview, names: tuple[str | None, ...]) -> ApplicationForReview:
    """The application without the names blind review hides, wherever the applicant wrote them."""
    return details.model_copy(
        update={
            "objectives": withhold(details.objectives, names) if details.objectives else None,
            "partners": [
                PartnerForReview(name=WITHHELD, country=partner.country)
                for partner in details.partners
            ],
            "budget_lines": [
                line.model_copy(update={"description": withhold(line.description, names)})
                for line in details.budget_lines
            ],
        }
    )


class ReviewOut(Copied):
    task_id: str
    reviewer_id: str
    scores: dict[str, int]
    weighted_total_bp: int
    recommendation: str
    comments: str
    submitted_at: datetime


class TaskSummary(Output):
    id: str
    kind: TaskKind
    status: TaskStatus
    application_id: str
    round: int
    report_id: str | None
    program_code: str
    title: str
    reviewer_id: str
    assigned_at: datetime
    due_at: datetime
    overdue: bool

    @classmethod
    def of(cls, record: TaskRecord, now: datetime, *, officer: bool) -> TaskSummary:
        task, request = record.task, record.request
        view = ApplicationView.of(request, officer=officer)
        return copy_of(
            cls,
            task,
            program_code=request.program_code,
            title=view.title,
            overdue=task.status is TaskStatus.OPEN and task.due_at < now,
        )


class TaskDetail(TaskSummary):
    application: ApplicationView
    rubric: Rubric
    recommendations: list[str] = Field(description="What this kind of review may recommend.")
    closed_at: datetime | None
    close_reason: str | None
    replaces_task_id: str | None
    review: ReviewOut | None

    @classmethod
    def of(cls, record: TaskRecord, now: datetime, *, officer: bool) -> TaskDetail:
        task, request, review = record.task, record.request, record.review
        summary = TaskSummary.of(record, now, officer=officer)
        return cls(
            **summary.model_dump(),
            application=ApplicationView.of(request, officer=officer),
            rubric=request.rubric,
            recommendations=list(RECOMMENDATIONS[task.kind]),
            closed_at=task.closed_at,
            close_reason=task.close_reason,
            replaces_task_id=task.replaces_task_id,
            review=ReviewOut.of(review) if review else None,
        )


# Constraints before the whole-number validator, or the schema loses them (minimum/maximum).
ScoreValue = Annotated[int, Field(ge=-1000, le=1000), Strict(), BeforeValidator(whole_number)]


class ReviewIn(Input):
    scores: dict[CriterionName, ScoreValue] = Field(
        max_length=50,
        description="A score for every rubric criterion, inside its range.",
        examples=[{"relevance": 4, "feasibility": 3}],
    )
    recommendation: Literal["approve", "decline", "revise", "changes_requested"] = Field(
        description="approve, decline or revise (applications); approve or changes_requested "
        "(post-exchange reports)."
    )
    comments: Annotated[str, Field(max_length=20_000)] = ""
    attest_no_conflict: StrictBool = Field(
        description="The reviewer attests having no conflict of interest; must be true "
        "(a reviewer with a conflict recuses instead).",
        json_schema_extra={"const": True},
    )


class RecuseIn(Input):
    reason: Annotated[str, Field(min_length=3, max_length=2000)]


class RecuseOut(Output):
    task: TaskSummary
    replacement_assigned: bool


class ReassignIn(Input):
    reason: Annotated[str, Field(min_length=3, max_length=2000)]
    reviewer_id: ReviewerId | None = Field(
        default=None, description="The new reviewer; left out, the best eligible one."
    )


class FillIn(Input):
    reviewer_id: ReviewerId | None = Field(
        default=None, description="Who fills the next open slot; left out, the best eligible."
    )


class RequestOut(Output):
    id: str
    kind: TaskKind
    application_id: str
    round: int
    report_id: str | None
    program_code: str
    reviews_needed: int
    staffed: int = Field(description="Slots with an open or completed task.")
    completed: int
    due_at: datetime

    @classmethod
    def of(cls, request: RequestRow, tasks: list[TaskRow]) -> RequestOut:
        return copy_of(
            cls,
            request,
            staffed=request.reviews_needed - len(empty_slots(request.reviews_needed, tasks)),
            completed=sum(t.status is TaskStatus.COMPLETED for t in tasks),
        )


# ---------------------------------------------------------------- reports for officers


class WorkloadOut(Output):
    reviewer_id: str
    capacity: int
    open: int
    overdue: int
    completed: int
    completed_late: int
    recused: int
    taken_away: int = Field(description="Tasks reassigned away because they were late.")
    mean_turnaround_seconds: float | None

    @classmethod
    def of(cls, line: Workload) -> WorkloadOut:
        turnaround = line.mean_turnaround
        return copy_of(
            cls,
            line,
            mean_turnaround_seconds=(
                turnaround / timedelta(seconds=1) if turnaround is not None else None
            ),
        )


class RoundScores(Output):
    kind: TaskKind
    round: int
    report_id: str | None
    reviews: list[ReviewOut]
    mean_total_bp: int | None
    spread_bp: int = Field(description="Highest minus lowest weighted total.")
    criterion_spread: dict[str, int]
    flagged: bool = Field(description="The spread is larger than the threshold.")

    @classmethod
    def of(cls, request: RequestRow, rows: list[ReviewRow], gap: Spread) -> RoundScores:
        totals = [row.weighted_total_bp for row in rows]
        return cls(
            kind=request.kind,
            round=request.round,
            report_id=request.report_id,
            reviews=[ReviewOut.of(row) for row in rows],
            mean_total_bp=sum(totals) // len(totals) if totals else None,
            spread_bp=gap.spread_bp,
            criterion_spread=dict(gap.per_criterion),
            flagged=gap.flagged,
        )


class ScoresOut(Output):
    application_id: str
    threshold_bp: int
    rounds: list[RoundScores]
