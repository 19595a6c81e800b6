"""workflows: the officers' attention list (escalations, and each application's last status)."""

import sqlalchemy as sa
from alembic import op

from shared.db import Id, UtcDateTime

revision = "workflows_0002"
down_revision = "workflows_0001"


def upgrade() -> None:
    op.create_table(
        "workflows_attention_items",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("application_id", sa.String(100), nullable=False),
        sa.Column("program_code", sa.String(40), nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("stage", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raised_sequence", sa.Integer, nullable=True),
        sa.Column("raised_at", UtcDateTime, nullable=False),
        sa.Column("cleared_at", UtcDateTime, nullable=True),
    )
    op.create_index(
        "ix_workflows_attention_items_open",
        "workflows_attention_items",
        ["application_id", "cleared_at"],
    )
    op.create_index(
        "ix_workflows_attention_items_raised", "workflows_attention_items", ["raised_at", "id"]
    )
    op.create_table(
        "workflows_attention_applications",
        sa.Column("application_id", sa.String(100), primary_key=True),
        sa.Column("program_code", sa.String(40), nullable=True),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("waiting", sa.JSON, nullable=False),
        sa.Column("status_at", UtcDateTime, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("workflows_attention_applications")
    op.drop_index("ix_workflows_attention_items_raised", "workflows_attention_items")
    op.drop_index("ix_workflows_attention_items_open", "workflows_attention_items")
    op.drop_table("workflows_attention_items")
