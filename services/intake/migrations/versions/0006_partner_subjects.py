"""intake: each partner link remembers the subject its answer is filed under (one per
partner since applications have several partners; null: the application's one subject)."""

import sqlalchemy as sa
from alembic import op

revision = "intake_0006"
down_revision = "intake_0005"


def upgrade() -> None:
    with op.batch_alter_table("intake_partner_links") as batch:
        batch.add_column(sa.Column("subject", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("intake_partner_links") as batch:
        batch.drop_column("subject")
