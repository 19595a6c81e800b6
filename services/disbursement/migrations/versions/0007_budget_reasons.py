"""disbursement: why each ledger transaction was made (a budget's opening balance, an
officer's change), so that a budget changes only by entries that say why."""

import sqlalchemy as sa
from alembic import op

revision = "disbursement_0007"
down_revision = "disbursement_0006"


def upgrade() -> None:
    op.add_column("disbursement_transactions", sa.Column("reason", sa.Text, nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite drops a column by copying the table.
    with op.batch_alter_table("disbursement_transactions") as batch:
        batch.drop_column("reason")
