"""The review service's rules: who may review what, how scores are checked and compared.

Pure functions and value objects only; the use cases in ``service/`` feed them rows and
act on their answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Final, Protocol

from shared.contracts.programs import DEFAULT_SCORE_SPREAD_BP, Rubric
from shared.errors import Problem

# Weighted totals of one application further apart than this (in basis points of the
# maximum: 2500 = 25 percentage points) are flagged for a program officer.
SPREAD_FLAG_BP: Final = DEFAULT_SCORE_SPREAD_BP
# Reviewers are reminded this long before a task is due, or after four fifths of a shorter
# review period (a demo catalog's period may be 45 seconds).
REMINDER_LEAD: Final = timedelta(days=2)
WITHHELD: Final = "[withheld]"


class TaskKind(StrEnum):
    APPLICATION = "application"
    REPORT = "report"


class TaskStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    RECUSED = "recused"
    REASSIGNED = "reassigned"


RECOMMENDATIONS: Final[Mapping[TaskKind, tuple[str, ...]]] = {
    TaskKind.APPLICATION: ("approve", "decline", "revise"),
    TaskKind.REPORT: ("approve", "changes_requested"),
}


class SlotTask(Protocol):
    """A task as far as the staffing of its request's slots is concerned."""

    @property
    def slot(self) -> int: ...

    @property
    def status(self) -> TaskStatus: ...


def empty_slots(reviews_needed: int, tasks: Iterable[SlotTask]) -> list[int]:
    """The slots of a request with no open or completed task (never staffed, or left)."""
    staffed = {t.slot for t in tasks if t.status in (TaskStatus.OPEN, TaskStatus.COMPLETED)}
    return [slot for slot in range(1, reviews_needed + 1) if slot not in staffed]


def normalise(name: str) -> str:
    """Compare city names and member ids without case or spacing getting in the way."""
    return " ".join(name.casefold().split())


@dataclass(frozen=True)
class Candidate:
    """A reviewer as the assignment sees it: profile, conflicts and current open workload."""

    reviewer_id: str
    home_city: str
    capacity: int
    open_tasks: int = 0
    active: bool = True
    programs: frozenset[str] = frozenset()
    focus_areas: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    conflict_members: frozenset[str] = frozenset()
    conflict_cities: frozenset[str] = frozenset()


def round_subject(application_id: str, round: int) -> str:
    """What the answers to an application's review round are filed under.

    The requests and reassignments of one round share it, so that any of them sent again
    gets every answer of the round again (``shared.messaging.receipts``).
    """
    return f"review:{application_id}:{round}"


def report_subject(application_id: str, report_id: str) -> str:
    """What the answers to the reviews of one post-exchange report are filed under.

    The request carries no revision: the answers of every revision share it, and the
    workflow drops those it has seen (same event ids).
    """
    return f"report-review:{application_id}:{report_id}"


def answers_subject(kind: TaskKind, application_id: str, round: int, report_id: str | None) -> str:
    if kind is TaskKind.REPORT:
        assert report_id is not None, "a report review is about a report"
        return report_subject(application_id, report_id)
    return round_subject(application_id, round)


@dataclass(frozen=True)
class ReviewedApplication:
    """What is to be reviewed, as far as eligibility and expertise are concerned."""

    application_id: str
    member_id: str
    member_city: str | None
    program_code: str
    focus_area: str | None = None
    partner_city: str | None = None
    partner_country: str | None = None


def conflict(candidate: Candidate, subject: ReviewedApplication) -> str | None:
    """Why ``candidate`` has a conflict of interest with ``subject`` (None: it has none).

    Checked when a task is assigned, and again on every read and action of the task: a
    conflict declared later takes the task away.
    """
    if subject.member_city and normalise(candidate.home_city) == normalise(subject.member_city):
        return "the reviewer's home city is the applicant"
    if normalise(subject.member_id) in {normalise(m) for m in candidate.conflict_members}:
        return "the reviewer declared a conflict with the applicant"
    conflict_cities = {normalise(city) for city in candidate.conflict_cities}
    for city in (subject.member_city, subject.partner_city):
        if city and normalise(city) in conflict_cities:
            return f"the reviewer declared a conflict with {city}"
    return None


def ineligibility(
    candidate: Candidate, subject: ReviewedApplication, excluded: frozenset[str] = frozenset()
) -> str | None:
    """Why ``candidate`` may not review ``subject`` (None: it may).

    ``excluded`` holds reviewers who recused on the application or already held a task of
    the same request (a late reviewer does not get the task back).
    """
    if not candidate.active:
        return "the reviewer is not active"
    if candidate.reviewer_id in excluded:
        return "the reviewer recused on or already held this review"
    conflicted = conflict(candidate, subject)
    if conflicted is not None:
        return conflicted
    if candidate.open_tasks >= candidate.capacity:
        return "the reviewer is at capacity"
    return None


def expertise_match(candidate: Candidate, subject: ReviewedApplication) -> int:
    """How many of program, focus area and partner country the reviewer knows (0..3)."""
    return (
        (subject.program_code in candidate.programs)
        + (subject.focus_area is not None and subject.focus_area in candidate.focus_areas)
        + (subject.partner_country is not None and subject.partner_country in candidate.regions)
    )


def _preference(
    candidate: Candidate, subject: ReviewedApplication
) -> tuple[int, Fraction, int, str]:
    # Best expertise first; then the lightest load relative to capacity; then fewest open
    # tasks; the reviewer id breaks every remaining tie, so the order is total.
    return (
        -expertise_match(candidate, subject),
        Fraction(candidate.open_tasks, candidate.capacity),
        candidate.open_tasks,
        candidate.reviewer_id,
    )


@dataclass(frozen=True)
class Assignment:
    reviewer_ids: tuple[str, ...]
    short_by: int

    @property
    def complete(self) -> bool:
        return self.short_by == 0


def choose_reviewers(
    subject: ReviewedApplication,
    candidates: Iterable[Candidate],
    slots: int,
    excluded: frozenset[str] = frozenset(),
) -> Assignment:
    """Pick up to ``slots`` distinct eligible reviewers, most preferred first.

    Deterministic: the same candidates in any order give the same answer.
    """
    eligible = sorted(
        (c for c in candidates if ineligibility(c, subject, excluded) is None),
        key=lambda c: _preference(c, subject),
    )
    chosen: list[str] = []
    for candidate in eligible:
        if len(chosen) == slots:
            break
        if candidate.reviewer_id not in chosen:
            chosen.append(candidate.reviewer_id)
    return Assignment(tuple(chosen), max(slots - len(chosen), 0))


def check_scores(rubric: Rubric, scores: Mapping[str, int]) -> list[Problem]:
    """Every criterion scored once, inside its range, and nothing else."""
    problems: list[Problem] = []
    names = {criterion.name for criterion in rubric.criteria}
    for criterion in rubric.criteria:
        if criterion.name not in scores:
            problems.append(
                Problem(f"scores.{criterion.name}", f"criterion {criterion.name!r} is not scored")
            )
            continue
        score = scores[criterion.name]
        if not criterion.min_score <= score <= criterion.max_score:
            problems.append(
                Problem(
                    f"scores.{criterion.name}",
                    f"criterion {criterion.name!r} must be scored from {criterion.min_score} "
                    f"to {criterion.max_score}, not {score}",
                    "out_of_range",
                )
            )
    problems.extend(
        Problem(f"scores.{name}", f"{name!r} is not a criterion of this rubric", "unknown")
        for name in sorted(set(scores) - names)
    )
    return problems


def check_recommendation(kind: TaskKind, recommendation: str) -> list[Problem]:
    allowed = RECOMMENDATIONS[kind]
    if recommendation in allowed:
        return []
    return [
        Problem(
            "recommendation",
            f"a {kind.value} review recommends one of {', '.join(allowed)}",
            "literal_error",
        )
    ]


@dataclass(frozen=True)
class Spread:
    totals_bp: tuple[int, ...]
    spread_bp: int
    flagged: bool
    per_criterion: Mapping[str, int] = field(default_factory=dict)


def spread(
    totals_bp: Sequence[int],
    scores: Sequence[Mapping[str, int]] = (),
    threshold_bp: int = SPREAD_FLAG_BP,
) -> Spread:
    """How far apart reviewers are, overall and per criterion; flagged above the threshold."""
    overall = max(totals_bp) - min(totals_bp) if totals_bp else 0
    per_criterion: dict[str, int] = {}
    for name in sorted({name for one in scores for name in one}):
        values = [one[name] for one in scores if name in one]
        per_criterion[name] = max(values) - min(values)
    return Spread(
        tuple(totals_bp), overall, len(totals_bp) > 1 and overall > threshold_bp, per_criterion
    )


def reminder_at(assigned_at: datetime, due_at: datetime) -> datetime:
    """When to remind the reviewer that a task is due."""
    period = due_at - assigned_at
    if period <= timedelta(0):
        return due_at
    return due_at - min(REMINDER_LEAD, period / 5)


def replacement_due(now: datetime, due_at: datetime, period: timedelta) -> datetime:
    """A replacement keeps the request's due date if it is ahead, else gets a whole period."""
    return due_at if due_at > now else now + period


def withhold(text: str, names: Iterable[str | None]) -> str:
    """``text`` with every mention of ``names`` replaced, for blind review."""
    for name in names:
        if name and name.strip():
            text = re.sub(re.escape(name.strip()), WITHHELD, text, flags=re.IGNORECASE)
    return text


@dataclass(frozen=True)
class TaskTimes:
    reviewer_id: str
    status: TaskStatus
    assigned_at: datetime
    due_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True)
class Workload:
    reviewer_id: str
    capacity: int
    open: int
    overdue: int
    completed: int
    completed_late: int
    recused: int
    taken_away: int
    mean_turnaround: timedelta | None


def workload(
    capacities: Mapping[str, int], times: Iterable[TaskTimes], now: datetime
) -> list[Workload]:
    """Per reviewer: what is open, what is overdue, how fast reviews come back."""
    by_reviewer: dict[str, list[TaskTimes]] = {reviewer_id: [] for reviewer_id in capacities}
    for one in times:
        by_reviewer.setdefault(one.reviewer_id, []).append(one)
    lines = []
    for reviewer_id in sorted(by_reviewer):
        mine = by_reviewer[reviewer_id]
        done = [t for t in mine if t.status is TaskStatus.COMPLETED and t.closed_at is not None]
        turnarounds = [t.closed_at - t.assigned_at for t in done if t.closed_at is not None]
        lines.append(
            Workload(
                reviewer_id=reviewer_id,
                capacity=capacities.get(reviewer_id, 0),
                open=sum(t.status is TaskStatus.OPEN for t in mine),
                overdue=sum(t.status is TaskStatus.OPEN and t.due_at < now for t in mine),
                completed=len(done),
                completed_late=sum(
                    t.closed_at is not None and t.closed_at > t.due_at for t in done
                ),
                recused=sum(t.status is TaskStatus.RECUSED for t in mine),
                taken_away=sum(t.status is TaskStatus.REASSIGNED for t in mine),
                mean_turnaround=(
                    sum(turnarounds, timedelta(0)) / len(turnarounds) if turnarounds else None
                ),
            )
        )
    return lines
