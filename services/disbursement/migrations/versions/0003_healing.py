"""disbursement: command receipts, dead letters, broker epoch, mail queue (shared.messaging).

Revision ID: disbursement_0003
Revises: disbursement_0002
"""

from shared.migrations import add_healing_tables, drop_healing_tables

revision = "disbursement_0003"
down_revision = "disbursement_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_healing_tables("disbursement")


def downgrade() -> None:
    drop_healing_tables("disbursement")
