"""The review service's use cases, one method per action, each over the caller's ``Work``.

Split by who acts: the workflow's commands (``commands``), reviewers (``reviewers``),
program officers (``officers``) and the clock (``reminders``); ``staffing`` holds what
they share. None of them commits: the route, consumer or job that opened the work does.
"""

from __future__ import annotations

from services.review.service.commands import ReviewCommands
from services.review.service.officers import OfficerActions
from services.review.service.reminders import Reminders
from services.review.service.reviewers import ReviewerActions


class ReviewService(ReviewCommands, ReviewerActions, OfficerActions, Reminders):
    """Everything the review service does."""


__all__ = ["ReviewService"]
