"""disbursement: the waitlist, so that freed budget serves applications in submission order."""

import sqlalchemy as sa
from alembic import op

revision = "disbursement_0008"
down_revision = "disbursement_0007"


def upgrade() -> None:
    op.create_table(
        "disbursement_waitlist",
        sa.Column("application_id", sa.String(200), primary_key=True),
        sa.Column("program_code", sa.String(40), nullable=False),
        sa.Column("cycle", sa.String(20), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_disbursement_waitlist_order",
        "disbursement_waitlist",
        ["program_code", "cycle", "submitted_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_disbursement_waitlist_order", "disbursement_waitlist")
    op.drop_table("disbursement_waitlist")
