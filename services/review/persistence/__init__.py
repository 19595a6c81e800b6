"""Tables of the review service (migrated by services/review/migrations) and every query.

Reviewers, review requests (one per application and round, or per report review), the
tasks that fill a request's slots, submitted reviews and recusals. Use cases get typed
rows from ``ReviewStore`` and never build SQL themselves.

``tables`` declares the tables, ``records`` the typed rows the store hands out, ``store``
every query (``ReviewStore``). Every name is importable from here.
"""

from __future__ import annotations

from services.review.persistence.records import (
    RecusalRow,
    RequestRow,
    ReviewerRow,
    ReviewRow,
    TaskFilter,
    TaskRecord,
    TaskRow,
)
from services.review.persistence.store import (
    ReviewStore,
)
from services.review.persistence.tables import (
    messaging,
    metadata,
    recusals,
    reports,
    requests,
    reviewers,
    reviews,
    tasks,
)

__all__ = [
    "RecusalRow",
    "RequestRow",
    "ReviewRow",
    "ReviewStore",
    "ReviewerRow",
    "TaskFilter",
    "TaskRecord",
    "TaskRow",
    "messaging",
    "metadata",
    "recusals",
    "reports",
    "requests",
    "reviewers",
    "reviews",
    "tasks",
]
