"""review: reviewers, requests, tasks, reviews, recusals, handled commands and mail."""

import sqlalchemy as sa
from alembic import op

from services.review.migrations.retired import create_commands_table, create_mail_table

revision = "review_0002"
down_revision = "review_0001"

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _moment(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "review_reviewers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("home_city", sa.String(120), nullable=False),
        sa.Column("home_country", sa.String(2), nullable=True),
        sa.Column("programs", sa.JSON, nullable=False),
        sa.Column("focus_areas", sa.JSON, nullable=False),
        sa.Column("regions", sa.JSON, nullable=False),
        sa.Column("languages", sa.JSON, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("conflict_members", sa.JSON, nullable=False),
        sa.Column("conflict_cities", sa.JSON, nullable=False),
        _moment("created_at"),
        _moment("updated_at"),
    )
    op.create_table(
        "review_requests",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("command_id", sa.String(200), nullable=False, unique=True),
        sa.Column("application_id", sa.String(64), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("report_id", sa.String(64), nullable=True),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("member_city", sa.String(120), nullable=True),
        sa.Column("program_code", sa.String(64), nullable=False),
        sa.Column("focus_area", sa.String(64), nullable=True),
        sa.Column("partner_city", sa.String(120), nullable=True),
        sa.Column("partner_country", sa.String(2), nullable=True),
        sa.Column("blind_review", sa.Boolean, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("requested", sa.JSON, nullable=True),
        sa.Column("rubric", sa.JSON, nullable=False),
        sa.Column("reviews_needed", sa.Integer, nullable=False),
        _moment("due_at"),
        _moment("received_at"),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.UniqueConstraint("kind", "application_id", "round", name="uq_review_requests_round"),
    )
    op.create_table(
        "review_tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("request_id", sa.String(36), sa.ForeignKey("review_requests.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("application_id", sa.String(64), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("report_id", sa.String(64), nullable=True),
        sa.Column("slot", sa.Integer, nullable=False),
        sa.Column(
            "reviewer_id", sa.String(64), sa.ForeignKey("review_reviewers.id"), nullable=False
        ),
        sa.Column("status", sa.String(16), nullable=False),
        _moment("assigned_at"),
        _moment("due_at"),
        _moment("remind_at"),
        _moment("reminded_at", nullable=True),
        _moment("closed_at", nullable=True),
        sa.Column("close_reason", sa.Text, nullable=True),
        sa.Column("replaces_task_id", sa.String(36), nullable=True),
        sa.UniqueConstraint("request_id", "reviewer_id", name="uq_review_tasks_reviewer"),
    )
    op.create_index("ix_review_tasks_queue", "review_tasks", ["reviewer_id", "status", "due_at"])
    op.create_index("ix_review_tasks_application", "review_tasks", ["application_id"])
    op.create_index("ix_review_tasks_reminders", "review_tasks", ["status", "remind_at"])
    op.create_table(
        "review_reviews",
        sa.Column("task_id", sa.String(36), sa.ForeignKey("review_tasks.id"), primary_key=True),
        sa.Column("reviewer_id", sa.String(64), nullable=False),
        sa.Column("application_id", sa.String(64), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scores", sa.JSON, nullable=False),
        sa.Column("weighted_total_bp", sa.Integer, nullable=False),
        sa.Column("recommendation", sa.String(32), nullable=False),
        sa.Column("comments", sa.Text, nullable=False),
        sa.Column("attested_no_conflict", sa.Boolean, nullable=False),
        _moment("submitted_at"),
    )
    op.create_index("ix_review_reviews_application", "review_reviews", ["application_id"])
    op.create_table(
        "review_recusals",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(36), nullable=False, unique=True),
        sa.Column("reviewer_id", sa.String(64), nullable=False),
        sa.Column("application_id", sa.String(64), nullable=False),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        _moment("recorded_at"),
    )
    op.create_index("ix_review_recusals_application", "review_recusals", ["application_id"])
    create_commands_table()
    create_mail_table()


def downgrade() -> None:
    op.drop_index("ix_review_mail_unsent", "review_mail")
    op.drop_table("review_mail")
    op.drop_table("review_commands")
    op.drop_index("ix_review_recusals_application", "review_recusals")
    op.drop_table("review_recusals")
    op.drop_index("ix_review_reviews_application", "review_reviews")
    op.drop_table("review_reviews")
    op.drop_index("ix_review_tasks_reminders", "review_tasks")
    op.drop_index("ix_review_tasks_application", "review_tasks")
    op.drop_index("ix_review_tasks_queue", "review_tasks")
    op.drop_table("review_tasks")
    op.drop_table("review_requests")
    op.drop_table("review_reviewers")
