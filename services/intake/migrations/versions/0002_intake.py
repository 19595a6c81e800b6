"""intake: members, exchange rates, applications, status history, partner links, mail."""

import sqlalchemy as sa
from alembic import op

revision = "intake_0002"
down_revision = "intake_0001"

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "intake_members",
        sa.Column("member_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(100), nullable=True),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("contacts", sa.JSON, nullable=False),
        sa.Column("sister_cities", sa.JSON, nullable=False),
        sa.Column("membership_active", sa.Boolean, nullable=False),
        sa.Column("good_standing", sa.Boolean, nullable=False),
        sa.Column("standing_reason", sa.String(40), nullable=True),
        _when("standing_changed_at", True),
        _when("created_at", False),
        _when("updated_at", False),
    )
    op.create_table(
        "intake_exchange_rates",
        sa.Column("from_currency", sa.String(3), primary_key=True),
        sa.Column("to_currency", sa.String(3), primary_key=True),
        sa.Column("rate", sa.String(40), nullable=False),
        _when("updated_at", False),
        sa.Column("updated_by", sa.String(120), nullable=False),
    )
    op.create_table(
        "intake_applications",
        sa.Column("application_id", sa.String(36), primary_key=True),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("program_code", sa.String(40), nullable=True),
        sa.Column("cycle", sa.String(20), nullable=True),
        sa.Column("title", sa.String(200), nullable=True),
        sa.Column("status", sa.String(80), nullable=False),
        sa.Column("status_sequence", sa.Integer, nullable=False),
        sa.Column("open_key", sa.String(200), nullable=True, unique=True),
        sa.Column("draft", sa.JSON, nullable=False),
        sa.Column("draft_version", sa.Integer, nullable=False),
        sa.Column("snapshot", sa.JSON, nullable=True),
        sa.Column("catalog_version", sa.String(40), nullable=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("deadlines", sa.JSON, nullable=False),
        sa.Column("action_required", sa.Text, nullable=True),
        sa.Column("amounts", sa.JSON, nullable=True),
        sa.Column("awarded", sa.Boolean, nullable=False),
        _when("withdrawal_requested_at", True),
        sa.Column("resubmitted_at_sequence", sa.Integer, nullable=True),
        _when("created_at", False),
        _when("updated_at", False),
        _when("submitted_at", True),
    )
    op.create_index(
        "ix_intake_applications_member", "intake_applications", ["member_id", "created_at"]
    )
    op.create_index("ix_intake_applications_status", "intake_applications", ["status"])
    op.create_table(
        "intake_status_history",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("application_id", sa.String(36), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(80), nullable=False),
        sa.Column("previous_stage", sa.String(80), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("action_required", sa.Text, nullable=True),
        sa.Column("deadlines", sa.JSON, nullable=False),
        _when("occurred_at", False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.UniqueConstraint("application_id", "sequence", name="uq_intake_status_history_sequence"),
    )
    op.create_table(
        "intake_application_actions",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("application_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        _when("occurred_at", False),
    )
    op.create_index(
        "ix_intake_application_actions_app", "intake_application_actions", ["application_id"]
    )
    op.create_table(
        "intake_idempotency_keys",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
        _when("created_at", False),
    )
    op.create_table(
        "intake_partner_links",
        sa.Column("link_id", sa.String(32), primary_key=True),
        sa.Column("application_id", sa.String(36), nullable=False),
        sa.Column("command_id", sa.String(200), nullable=False),
        sa.Column("partner_city", sa.String(200), nullable=False),
        sa.Column("partner_email", sa.String(254), nullable=False),
        _when("due_at", False),
        _when("created_at", False),
        sa.Column("requests", sa.Integer, nullable=False),
        _when("answered_at", True),
        sa.Column("confirmed", sa.Boolean, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.UniqueConstraint("application_id", "command_id", name="uq_intake_partner_links_command"),
    )
    op.create_table(
        "intake_notifications",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("application_id", sa.String(36), nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("recipients", sa.JSON, nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        _when("created_at", False),
        _when("sent_at", True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_intake_notifications_unsent", "intake_notifications", ["sent_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_intake_notifications_unsent", "intake_notifications")
    op.drop_table("intake_notifications")
    op.drop_table("intake_partner_links")
    op.drop_table("intake_idempotency_keys")
    op.drop_index("ix_intake_application_actions_app", "intake_application_actions")
    op.drop_table("intake_application_actions")
    op.drop_table("intake_status_history")
    op.drop_index("ix_intake_applications_status", "intake_applications")
    op.drop_index("ix_intake_applications_member", "intake_applications")
    op.drop_table("intake_applications")
    op.drop_table("intake_exchange_rates")
    op.drop_table("intake_members")
