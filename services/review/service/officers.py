"""What a program officer does: move and staff tasks, compare scores, watch the workload,
and keep the panel of reviewers."""

from __future__ import annotations

from typing import Any

from services.review.demo import DEMO_REVIEWERS
from services.review.domain import TaskStatus, Workload, empty_slots, spread, workload
from services.review.persistence import ReviewStore, TaskRecord
from services.review.schemas import (
    Recusal,
    RequestOut,
    ReviewerIn,
    ReviewerOut,
    ReviewerPatch,
    RoundScores,
    ScoresOut,
)
from services.review.service.reviewers import take_away_conflicted
from services.review.service.staffing import assign, pick_one, take_away
from shared.errors import ConflictError, NotFoundError
from shared.service import Service, Work

NO_REVIEWS: str = "no reviews were requested for this application"


class OfficerActions(Service):
    async def task_for_officer(self, work: Work, task_id: str) -> TaskRecord:
        store = ReviewStore(work.session)
        task = await store.task(task_id)
        if task is None:
            raise NotFoundError("no such task")
        return await store.task_record(task)

    async def officer_reassign(
        self, work: Work, task_id: str, reason: str, reviewer_id: str | None
    ) -> TaskRecord:
        """Move an open task by hand, to a named reviewer or the best eligible one.

        Refused (409) rather than leaving the slot empty when nobody else may take it.
        """
        store = ReviewStore(work.session)
        task = await store.task(task_id, lock=True)
        if task is None:
            raise NotFoundError("no such task")
        if task.status is not TaskStatus.OPEN:
            raise ConflictError(f"this task is {task.status.value}; only an open task can move")
        request = (await store.task_record(task)).request
        chosen = await pick_one(store, request, reviewer_id)
        await take_away(work, store, request, task, f"reassigned by a program officer: {reason}")
        moved = await assign(work, store, request, task.slot, chosen, replaces=task.id, refill=True)
        return await store.task_record(moved)

    async def officer_fill(
        self, work: Work, request_id: str, reviewer_id: str | None
    ) -> TaskRecord:
        """Staff the next empty slot of a request that was short of reviewers."""
        store = ReviewStore(work.session)
        request = await store.request(request_id)
        if request is None:
            raise NotFoundError("no such review request")
        tasks = await store.request_tasks(request.id)
        empty = empty_slots(request.reviews_needed, tasks)
        if not empty:
            raise ConflictError("every slot of this request already has a reviewer")
        chosen = await pick_one(store, request, reviewer_id)
        left = [t for t in tasks if t.slot == empty[0]]
        staffed = await assign(
            work,
            store,
            request,
            empty[0],
            chosen,
            replaces=left[-1].id if left else None,
            refill=True,
        )
        return await store.task_record(staffed)

    async def requests_of(
        self, work: Work, application_id: str, *, limit: int, offset: int
    ) -> list[RequestOut]:
        store = ReviewStore(work.session)
        page = await store.application_requests(application_id, limit=limit, offset=offset)
        if not page and (offset == 0 or not await store.application_requests(application_id)):
            raise NotFoundError(NO_REVIEWS)
        return [RequestOut.of(request, await store.request_tasks(request.id)) for request in page]

    async def scores(self, work: Work, application_id: str, threshold_bp: int) -> ScoresOut:
        """Every round's reviews side by side, with the spread between reviewers."""
        store = ReviewStore(work.session)
        requests = await store.application_requests(application_id)
        if not requests:
            raise NotFoundError(NO_REVIEWS)
        all_reviews = await store.application_reviews(application_id)
        rounds = []
        for request in requests:
            rows = [r for r in all_reviews if r.kind is request.kind and r.round == request.round]
            gap = spread(
                [r.weighted_total_bp for r in rows], [r.scores for r in rows], threshold_bp
            )
            rounds.append(RoundScores.of(request, rows, gap))
        return ScoresOut(application_id=application_id, threshold_bp=threshold_bp, rounds=rounds)

    async def workload_report(self, work: Work, *, limit: int, offset: int) -> list[Workload]:
        """A page of the reviewers, each with the times of its own tasks only."""
        store = ReviewStore(work.session)
        page = await store.reviewers(limit=limit, offset=offset)
        capacities = {row.id: row.capacity for row in page}
        return workload(capacities, await store.task_times(list(capacities)), work.now)

    # The panel of reviewers ---------------------------------------------------------------

    async def create_reviewer(self, work: Work, profile: ReviewerIn) -> ReviewerOut:
        store = ReviewStore(work.session)
        if await store.reviewer(profile.id) is not None:
            raise ConflictError(f"reviewer {profile.id} exists already")
        await store.add_reviewer(
            {
                "id": profile.id,
                **_profile_values(profile),
                "created_at": work.now,
                "updated_at": work.now,
            }
        )
        return await self.reviewer(work, profile.id)

    async def update_reviewer(
        self, work: Work, reviewer_id: str, patch: ReviewerPatch
    ) -> ReviewerOut:
        store = ReviewStore(work.session)
        if await store.reviewer(reviewer_id) is None:
            raise NotFoundError("no such reviewer")
        values = _profile_values(patch)
        if values:
            await store.update_reviewer(reviewer_id, {**values, "updated_at": work.now})
        # A conflict declared after assignment takes the task away and gives it to another.
        await take_away_conflicted(work, reviewer_id)
        return await self.reviewer(work, reviewer_id)

    async def reviewer(self, work: Work, reviewer_id: str) -> ReviewerOut:
        store = ReviewStore(work.session)
        row = await store.reviewer(reviewer_id)
        if row is None:
            raise NotFoundError("no such reviewer")
        counts = await store.open_task_counts()
        recusals = [Recusal.of(r) for r in await store.reviewer_recusals(reviewer_id)]
        return ReviewerOut.of(row, counts.get(row.id, 0), recusals)

    async def all_reviewers(
        self, work: Work, active: bool | None, *, limit: int, offset: int
    ) -> list[ReviewerOut]:
        store = ReviewStore(work.session)
        counts = await store.open_task_counts()
        page = await store.reviewers(active, limit=limit, offset=offset)
        return [ReviewerOut.of(row, counts.get(row.id, 0)) for row in page]

    async def seed_demo_reviewers(self, work: Work) -> int:
        """Add the demo reviewers that are missing; return how many were added."""
        store = ReviewStore(work.session)
        present = {reviewer.id for reviewer in await store.reviewers()}
        missing = [r for r in DEMO_REVIEWERS if r["id"] not in present]
        for values in missing:
            await store.add_reviewer({**values, "created_at": work.now, "updated_at": work.now})
        return len(missing)


def _profile_values(profile: ReviewerIn | ReviewerPatch) -> dict[str, Any]:
    """Column values for the fields given (all of them for a new reviewer)."""
    given = profile.model_fields_set if isinstance(profile, ReviewerPatch) else None
    values: dict[str, Any] = {}
    for name in ("name", "email", "home_city", "home_country", "capacity", "active"):
        value = getattr(profile, name)
        if given is None or (name in given and (value is not None or name == "home_country")):
            values[name] = value
    if profile.expertise is not None and (given is None or "expertise" in given):
        values |= {
            "programs": profile.expertise.programs,
            "focus_areas": profile.expertise.focus_areas,
            "regions": profile.expertise.regions,
            "languages": profile.expertise.languages,
        }
    if profile.conflicts is not None and (given is None or "conflicts" in given):
        values |= {
            "conflict_members": profile.conflicts.members,
            "conflict_cities": profile.conflicts.cities,
        }
    return values
