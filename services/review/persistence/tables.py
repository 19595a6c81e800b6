"""The review service's tables, migrated by ``services/review/migrations``.

Reviewers, review requests (one per application and round, or per report review), the
reports under review, the tasks that fill a request's slots, submitted reviews and
recusals; and the messaging tables (outbox, inbox, dead letters).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from shared.contracts.base import NOT_A_CONTRACT_FIELD
from shared.db import Id, UtcDateTime
from shared.messaging.tables import define_messaging_tables

metadata = MetaData()
messaging = define_messaging_tables(metadata, "review")

reviewers = Table(
    "review_reviewers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, info=NOT_A_CONTRACT_FIELD),
    Column("email", String(320), nullable=False),
    Column("home_city", String(200), nullable=False),
    Column("home_country", String(2), nullable=True),
    Column("programs", JSON, nullable=False),
    Column("focus_areas", JSON, nullable=False),
    Column("regions", JSON, nullable=False),
    Column("languages", JSON, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("conflict_members", JSON, nullable=False),
    Column("conflict_cities", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

requests = Table(
    "review_requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False, info=NOT_A_CONTRACT_FIELD),
    Column("command_id", String(200), nullable=False, unique=True),
    Column("application_id", String(64), nullable=False),
    Column("round", Integer, nullable=False),
    Column("report_id", String(128), nullable=True),
    Column("member_id", String(64), nullable=False),
    Column("member_city", String(200), nullable=True),
    Column("program_code", String(64), nullable=False),
    Column("focus_area", String(64), nullable=True),
    Column("partner_city", String(200), nullable=True),
    Column("partner_country", String(2), nullable=True),
    Column("blind_review", Boolean, nullable=False),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("requested", JSON, nullable=True),
    Column("rubric", JSON, nullable=False),
    Column("reviews_needed", Integer, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("correlation_id", String(64), nullable=False),
    # Report reviews: the report under review (a ReportView), newest revision received.
    Column("report", JSON, nullable=True),
    # Application reviews: the plan and its money (an ApplicationForReview).
    Column("application", JSON, nullable=True),
    UniqueConstraint("kind", "application_id", "round", name="uq_review_requests_round"),
)

# Post-exchange reports as reporting published them, one row per revision: a report may
# arrive before or after the workflow asks for its review.
reports = Table(
    "review_reports",
    metadata,
    Column("report_id", String(128), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("application_id", String(64), nullable=False),
    Column("report", JSON, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
)

tasks = Table(
    "review_tasks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("request_id", String(36), ForeignKey("review_requests.id"), nullable=False),
    Column("kind", String(16), nullable=False, info=NOT_A_CONTRACT_FIELD),
    Column("application_id", String(64), nullable=False),
    Column("round", Integer, nullable=False),
    Column("report_id", String(128), nullable=True),
    Column("slot", Integer, nullable=False),
    Column("reviewer_id", String(64), ForeignKey("review_reviewers.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("assigned_at", UtcDateTime, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("remind_at", UtcDateTime, nullable=False),
    Column("reminded_at", UtcDateTime, nullable=True),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("close_reason", Text, nullable=True),
    Column("replaces_task_id", String(36), nullable=True),
    UniqueConstraint("request_id", "reviewer_id", name="uq_review_tasks_reviewer"),
)
Index("ix_review_tasks_queue", tasks.c.reviewer_id, tasks.c.status, tasks.c.due_at)
Index("ix_review_tasks_application", tasks.c.application_id)
Index("ix_review_tasks_reminders", tasks.c.status, tasks.c.remind_at)

reviews = Table(
    "review_reviews",
    metadata,
    Column("task_id", String(36), ForeignKey("review_tasks.id"), primary_key=True),
    Column("reviewer_id", String(64), nullable=False),
    Column("application_id", String(64), nullable=False),
    Column("round", Integer, nullable=False),
    Column("kind", String(16), nullable=False, info=NOT_A_CONTRACT_FIELD),
    Column("scores", JSON, nullable=False),
    Column("weighted_total_bp", Integer, nullable=False),
    Column("recommendation", String(32), nullable=False),
    Column("comments", Text, nullable=False),
    Column("attested_no_conflict", Boolean, nullable=False),
    Column("submitted_at", UtcDateTime, nullable=False),
)
Index("ix_review_reviews_application", reviews.c.application_id)

recusals = Table(
    "review_recusals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("task_id", String(36), nullable=False, unique=True),
    Column("reviewer_id", String(64), nullable=False),
    Column("application_id", String(64), nullable=False),
    Column("member_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)
Index("ix_review_recusals_application", recusals.c.application_id)
