"""review: the whole application on each review request, for reviewers to judge feasibility."""

import sqlalchemy as sa
from alembic import op

revision = "review_0007"
down_revision = "review_0006"


def upgrade() -> None:
    op.add_column("review_requests", sa.Column("application", sa.JSON, nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite drops a column by copying the table.
    with op.batch_alter_table("review_requests") as batch:
        batch.drop_column("application")
