"""disbursement: the finance webhook's deliveries and their answers.

A repeated delivery (the same ``X-Grantflow-Delivery`` id, or the same signed request
replayed) is answered as before and applied once.
"""

import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime

revision = "disbursement_0005"
down_revision = "disbursement_0004"


def upgrade() -> None:
    op.create_table(
        "disbursement_webhook_deliveries",
        sa.Column("delivery_id", sa.String(100), primary_key=True),
        sa.Column("signature", sa.String(64), nullable=False, unique=True),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("disbursement_webhook_deliveries")
