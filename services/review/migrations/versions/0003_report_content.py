"""review: the post-exchange reports under review, so that report tasks show them."""

import sqlalchemy as sa
from alembic import op

revision = "review_0003"
down_revision = "review_0002"


def upgrade() -> None:
    op.create_table(
        "review_reports",
        sa.Column("report_id", sa.String(64), primary_key=True),
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("application_id", sa.String(64), nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("review_requests", sa.Column("report", sa.JSON, nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite drops a column by copying the table.
    with op.batch_alter_table("review_requests") as batch:
        batch.drop_column("report")
    op.drop_table("review_reports")
