"""disbursement: refunds finance is asked to collect, and finance's answers about them.

A refund requested before this migration stays in ``refund_due`` with no request to
finance: an officer asks the member directly (reconciliation lists refund_due per program).
"""

import sqlalchemy as sa
from alembic import op

from services.disbursement.migrations.receipts import create_receipts_table

revision = "disbursement_0006"
down_revision = "disbursement_0005"

_Key = sa.String(200)
_When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "disbursement_refunds",
        sa.Column("refund_id", _Key, primary_key=True),
        sa.Column("application_id", _Key, nullable=False),
        sa.Column("program_code", sa.String(40), nullable=False),
        sa.Column("cycle", sa.String(20), nullable=False),
        sa.Column("payer_reference", _Key, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("received_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("sends", sa.Integer, nullable=False),
        sa.Column("due_at", _When, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("correlation_id", sa.String(100), nullable=False),
        sa.Column("created_at", _When, nullable=False),
        sa.Column("received_at", _When, nullable=True),
    )
    op.create_index("ix_disbursement_refunds_due", "disbursement_refunds", ["status", "due_at"])
    op.create_index(
        "ix_disbursement_refunds_application", "disbursement_refunds", ["application_id"]
    )
    create_receipts_table("disbursement_refund_receipts", "refund_id")
    op.create_index(
        "ix_disbursement_refund_receipts_refund", "disbursement_refund_receipts", ["refund_id"]
    )


def downgrade() -> None:
    op.drop_table("disbursement_refund_receipts")
    op.drop_table("disbursement_refunds")
