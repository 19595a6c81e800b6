"""Tables a later revision retired, as the revision that created them built them.

The retiring revision's downgrade builds them again through the same function, so a
downgrade restores exactly the table the upgrade took away.
"""

import sqlalchemy as sa
from alembic import op

_Key = sa.String(200)


def create_commands_table() -> None:
    """``disbursement_commands`` (revision 0002; retired by 0004's applied keys)."""
    op.create_table(
        "disbursement_commands",
        sa.Column("command_id", _Key, primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("idempotency_key", _Key, nullable=False),
        sa.Column("application_id", _Key, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("result_topic", sa.String(255), nullable=True),
        sa.Column("result_payload", sa.Text, nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_disbursement_commands_key", "disbursement_commands", ["kind", "idempotency_key"]
    )
