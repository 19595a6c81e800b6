"""The typed rows ``ReviewStore`` hands out, and the filter it finds tasks by."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.review.domain import Candidate, TaskKind, TaskStatus, answers_subject
from shared.contracts.programs import Rubric


@dataclass(frozen=True)
class ReviewerRow:
    id: str
    name: str
    email: str
    home_city: str
    home_country: str | None
    programs: list[str]
    focus_areas: list[str]
    regions: list[str]
    languages: list[str]
    capacity: int
    active: bool
    conflict_members: list[str]
    conflict_cities: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> ReviewerRow:
        return cls(**row._mapping)

    def candidate(self, open_tasks: int) -> Candidate:
        return Candidate(
            reviewer_id=self.id,
            home_city=self.home_city,
            capacity=self.capacity,
            open_tasks=open_tasks,
            active=self.active,
            programs=frozenset(self.programs),
            focus_areas=frozenset(self.focus_areas),
            regions=frozenset(self.regions),
            conflict_members=frozenset(self.conflict_members),
            conflict_cities=frozenset(self.conflict_cities),
        )


@dataclass(frozen=True)
class RequestRow:
    id: str
    kind: TaskKind
    command_id: str
    application_id: str
    round: int
    report_id: str | None
    member_id: str
    member_city: str | None
    program_code: str
    focus_area: str | None
    partner_city: str | None
    partner_country: str | None
    blind_review: bool
    title: str
    summary: str
    requested: dict[str, Any] | None
    rubric: Rubric
    reviews_needed: int
    due_at: datetime
    received_at: datetime
    correlation_id: str
    report: dict[str, Any] | None
    application: dict[str, Any] | None

    @classmethod
    def of(cls, row: Any) -> RequestRow:
        values = dict(row._mapping)
        return cls(
            **values
            | {"kind": TaskKind(values["kind"]), "rubric": Rubric.model_validate(values["rubric"])}
        )

    @property
    def subject(self) -> str:
        """What every answer about this request is filed under."""
        return answers_subject(self.kind, self.application_id, self.round, self.report_id)


@dataclass(frozen=True)
class TaskRow:
    id: str
    request_id: str
    kind: TaskKind
    application_id: str
    round: int
    report_id: str | None
    slot: int
    reviewer_id: str
    status: TaskStatus
    assigned_at: datetime
    due_at: datetime
    remind_at: datetime
    reminded_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    replaces_task_id: str | None

    @classmethod
    def of(cls, row: Any) -> TaskRow:
        values = dict(row._mapping)
        return cls(
            **values | {"kind": TaskKind(values["kind"]), "status": TaskStatus(values["status"])}
        )


@dataclass(frozen=True)
class ReviewRow:
    task_id: str
    reviewer_id: str
    application_id: str
    round: int
    kind: TaskKind
    scores: dict[str, int]
    weighted_total_bp: int
    recommendation: str
    comments: str
    attested_no_conflict: bool
    submitted_at: datetime

    @classmethod
    def of(cls, row: Any) -> ReviewRow:
        values = dict(row._mapping)
        return cls(**values | {"kind": TaskKind(values["kind"])})


@dataclass(frozen=True)
class TaskRecord:
    """A task with the request it belongs to and, once submitted, its review."""

    task: TaskRow
    request: RequestRow
    review: ReviewRow | None = None


@dataclass(frozen=True)
class RecusalRow:
    task_id: str
    application_id: str
    reason: str
    recorded_at: datetime


@dataclass(frozen=True)
class TaskFilter:
    reviewer_id: str | None = None
    statuses: tuple[TaskStatus, ...] = ()
    kind: TaskKind | None = None
    application_id: str | None = None
    program_code: str | None = None
    due_before: datetime | None = None
    limit: int = 200
    offset: int = 0
