"""Assignment rules as properties: whatever the reviewers, the rules hold."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.review.domain import (
    Candidate,
    ReviewedApplication,
    TaskKind,
    check_recommendation,
    check_scores,
    choose_reviewers,
    expertise_match,
    ineligibility,
    reminder_at,
    replacement_due,
    spread,
    withhold,
)
from tests.support.review import rubric

CITIES = ["Roanoke", "roanoke ", "Kisumu", "Asheville", "Duluth", "Tucson"]
MEMBERS = ["member-roanoke", "member-duluth", "member-tucson"]
PROGRAMS = ["AUPAP", "CITIZEN", "YAP-TNA"]
FOCUS = ["community_development", "youth_and_education"]
COUNTRIES = ["KE", "GH", "MX"]


def subsets(values: list[str]) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(values), max_size=len(values))


@st.composite
def candidates(draw: st.DrawFn) -> list[Candidate]:
    count = draw(st.integers(min_value=0, max_value=8))
    result = []
    for number in range(count):
        capacity = draw(st.integers(min_value=0, max_value=4))
        result.append(
            Candidate(
                reviewer_id=f"r-{number:02d}",
                home_city=draw(st.sampled_from(CITIES)),
                capacity=capacity,
                open_tasks=draw(st.integers(min_value=0, max_value=5)),
                active=draw(st.booleans()),
                programs=draw(subsets(PROGRAMS)),
                focus_areas=draw(subsets(FOCUS)),
                regions=draw(subsets(COUNTRIES)),
                conflict_members=draw(subsets(MEMBERS)),
                conflict_cities=draw(subsets(CITIES)),
            )
        )
    return result


applications = st.builds(
    ReviewedApplication,
    application_id=st.just("app-1"),
    member_id=st.sampled_from(MEMBERS),
    member_city=st.sampled_from(CITIES),
    program_code=st.sampled_from(PROGRAMS),
    focus_area=st.sampled_from(FOCUS),
    partner_city=st.sampled_from(CITIES),
    partner_country=st.sampled_from(COUNTRIES),
)


def same_city(left: str, right: str) -> bool:
    return left.strip().lower() == right.strip().lower()


@settings(max_examples=100, deadline=None)
@given(
    pool=candidates(),
    application=applications,
    slots=st.integers(min_value=1, max_value=5),
    excluded=subsets([f"r-{n:02d}" for n in range(8)]),
)
def test_a_conflicted_recused_or_full_reviewer_is_never_assigned_and_no_slot_left_needlessly(
    pool: list[Candidate], application: ReviewedApplication, slots: int, excluded: frozenset[str]
) -> None:
    assignment = choose_reviewers(application, pool, slots, excluded)
    by_id = {c.reviewer_id: c for c in pool}
    assert len(assignment.reviewer_ids) == len(set(assignment.reviewer_ids)) <= slots
    for reviewer_id in assignment.reviewer_ids:
        chosen = by_id[reviewer_id]
        assert chosen.active
        assert reviewer_id not in excluded
        assert not same_city(chosen.home_city, application.member_city or "")
        assert application.member_id not in chosen.conflict_members
        assert not any(
            same_city(city, application.member_city or "")
            or same_city(city, application.partner_city or "")
            for city in chosen.conflict_cities
        )
        assert chosen.open_tasks + 1 <= chosen.capacity, "capacity exceeded"
    eligible = [c for c in pool if ineligibility(c, application, excluded) is None]
    assert len(assignment.reviewer_ids) == min(slots, len(eligible))
    assert assignment.short_by == slots - len(assignment.reviewer_ids)


@settings(max_examples=100, deadline=None)
@given(
    pool=candidates(),
    application=applications,
    slots=st.integers(min_value=1, max_value=5),
    seed=st.integers(),
)
def test_the_same_input_gives_the_same_assignment_and_experts_come_first(
    pool: list[Candidate], application: ReviewedApplication, slots: int, seed: int
) -> None:
    shuffled = list(pool)
    random.Random(seed).shuffle(shuffled)
    assignment = choose_reviewers(application, pool, slots)
    assert assignment == choose_reviewers(application, shuffled, slots)
    assert assignment == choose_reviewers(application, pool, slots)
    chosen = [c for c in pool if c.reviewer_id in assignment.reviewer_ids]
    passed_over = [
        c
        for c in pool
        if c.reviewer_id not in assignment.reviewer_ids and ineligibility(c, application) is None
    ]
    if chosen and passed_over:
        weakest = min(expertise_match(c, application) for c in chosen)
        assert all(expertise_match(c, application) <= weakest for c in passed_over)


def reviewer(reviewer_id: str, open_tasks: int, capacity: int = 4) -> Candidate:
    return Candidate(
        reviewer_id=reviewer_id,
        home_city="Asheville",
        capacity=capacity,
        open_tasks=open_tasks,
        programs=frozenset({"AUPAP"}),
    )


APPLICATION = ReviewedApplication(
    "app-1", "member-roanoke", "Roanoke", "AUPAP", "community_development"
)


def test_equal_experts_are_balanced_by_their_open_workload() -> None:
    pool = [reviewer("busy", 3), reviewer("idle", 0), reviewer("half", 2), reviewer("big", 2, 10)]
    assert choose_reviewers(APPLICATION, pool, 2).reviewer_ids == ("idle", "big")


def test_an_expert_is_preferred_to_an_idle_generalist() -> None:
    generalist = Candidate("generalist", "Asheville", capacity=5)
    expert = reviewer("expert", 3)
    assert choose_reviewers(APPLICATION, [generalist, expert], 1).reviewer_ids == ("expert",)


def test_the_applicants_own_city_is_never_its_reviewer_whatever_the_spelling() -> None:
    local = Candidate("local", " roanoke", capacity=5, programs=frozenset({"AUPAP"}))
    assert ineligibility(local, APPLICATION) == "the reviewer's home city is the applicant"
    assert choose_reviewers(APPLICATION, [local], 1).short_by == 1


def test_score_problems_name_the_criterion() -> None:
    problems = check_scores(rubric(), {"relevance": 6, "impact": 3, "charm": 2})
    assert [(p.field, p.kind) for p in problems] == [
        ("scores.relevance", "out_of_range"),
        ("scores.feasibility", "value_error"),
        ("scores.charm", "unknown"),
    ]
    assert "from 0 to 5, not 6" in problems[0].message
    assert check_scores(rubric(), {"relevance": 0, "feasibility": 1, "impact": 10}) == []


def test_a_report_review_cannot_decline_and_an_application_review_cannot_request_changes() -> None:
    assert check_recommendation(TaskKind.REPORT, "changes_requested") == []
    assert check_recommendation(TaskKind.REPORT, "decline")[0].field == "recommendation"
    assert check_recommendation(TaskKind.APPLICATION, "changes_requested")


def test_a_large_spread_between_reviewers_is_flagged() -> None:
    close = spread([7000, 7400], [{"relevance": 4}, {"relevance": 5}])
    assert (close.spread_bp, close.flagged, dict(close.per_criterion)) == (
        400,
        False,
        {"relevance": 1},
    )
    assert spread([9000, 4000]).flagged
    assert not spread([9000]).flagged


def test_reminders_come_two_days_ahead_or_after_four_fifths_of_a_short_period() -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    assert reminder_at(start, start + timedelta(days=30)) == start + timedelta(days=28)
    assert reminder_at(start, start + timedelta(seconds=50)) == start + timedelta(seconds=40)


def test_a_replacement_keeps_a_future_due_date_or_gets_a_whole_period() -> None:
    now = datetime(2027, 1, 10, tzinfo=UTC)
    period = timedelta(days=14)
    assert replacement_due(now, now + timedelta(days=3), period) == now + timedelta(days=3)
    assert replacement_due(now, now - timedelta(days=1), period) == now + period


def test_blind_review_withholds_the_applicants_city_from_free_text() -> None:
    assert withhold("ROANOKE hosts Kisumu", ["Roanoke", None]) == "[withheld] hosts Kisumu"
