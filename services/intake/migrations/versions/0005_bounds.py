"""intake: application ids as long as the contract allows (64 characters, was 36)."""

import sqlalchemy as sa
from alembic import op

revision = "intake_0005"
down_revision = "intake_0004"

TABLES = (
    "intake_applications",
    "intake_status_history",
    "intake_application_actions",
    "intake_partner_links",
)


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("application_id", existing_type=sa.String(36), type_=sa.String(64))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("application_id", existing_type=sa.String(64), type_=sa.String(36))
