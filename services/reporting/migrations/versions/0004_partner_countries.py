"""reporting: an application's partner countries, all of them ('CA+MX' for a tri-lateral
exchange), where one two-letter code fitted before."""

import sqlalchemy as sa
from alembic import op

revision = "reporting_0004"
down_revision = "reporting_0003"


def upgrade() -> None:
    with op.batch_alter_table("reporting_app_summaries") as batch:
        batch.alter_column(
            "partner_country", type_=sa.String(64), existing_type=sa.String(8), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("reporting_app_summaries") as batch:
        batch.alter_column(
            "partner_country", type_=sa.String(8), existing_type=sa.String(64), nullable=False
        )
