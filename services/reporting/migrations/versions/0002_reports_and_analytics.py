"""reporting: report obligations, their reviews, and the analytics read model."""

import sqlalchemy as sa
from alembic import op

from shared.db import Id

revision = "reporting_0002"
down_revision = "reporting_0001"


def upgrade() -> None:
    op.create_table(
        "reporting_reports",
        sa.Column("report_id", sa.String(128), primary_key=True),
        sa.Column("application_id", sa.String(255), nullable=False),
        sa.Column("member_id", sa.String(255), nullable=False),
        sa.Column("program_code", sa.String(64), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("due_on", sa.Date, nullable=True),
        sa.Column("reminders_at", sa.Text, nullable=False, server_default="[]"),
        sa.Column("budget_lines", sa.Text, nullable=False, server_default="[]"),
        sa.Column("awarded_minor", sa.BigInteger, nullable=True),
        sa.Column("awarded_currency", sa.String(3), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("draft", sa.Text, nullable=True),
        sa.Column("submitted", sa.Text, nullable=True),
        sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actual_spending_minor", sa.BigInteger, nullable=True),
        sa.Column("overdue_since", sa.Date, nullable=True),
        sa.Column("standing_lost", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("correlation_id", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reporting_reports_member", "reporting_reports", ["member_id", "due_on"])
    op.create_table(
        "reporting_report_reviews",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("report_id", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("reviewer_id", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("comments", sa.Text, nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reporting_report_reviews_report", "reporting_report_reviews", ["report_id"])
    op.create_table(
        "reporting_facts",
        sa.Column("application_id", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("ref", sa.String(255), primary_key=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_table(
        "reporting_app_summaries",
        sa.Column("application_id", sa.String(255), primary_key=True),
        sa.Column("program_code", sa.String(64), nullable=False),
        sa.Column("cycle", sa.String(32), nullable=False),
        sa.Column("focus_area", sa.String(64), nullable=False),
        sa.Column("partner_country", sa.String(8), nullable=False),
        sa.Column("member_id", sa.String(255), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_reporting_app_summaries_program",
        "reporting_app_summaries",
        ["program_code", "cycle"],
    )


def downgrade() -> None:
    op.drop_index("ix_reporting_app_summaries_program", "reporting_app_summaries")
    op.drop_table("reporting_app_summaries")
    op.drop_table("reporting_facts")
    op.drop_index("ix_reporting_report_reviews_report", "reporting_report_reviews")
    op.drop_table("reporting_report_reviews")
    op.drop_index("ix_reporting_reports_member", "reporting_reports")
    op.drop_table("reporting_reports")
