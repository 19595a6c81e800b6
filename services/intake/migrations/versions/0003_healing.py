"""intake: command receipts, dead letters, broker epoch, mail queue (shared.messaging).

Revision ID: intake_0003
Revises: intake_0002
"""

from shared.migrations import add_healing_tables, drop_healing_tables

revision = "intake_0003"
down_revision = "intake_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_healing_tables("intake")


def downgrade() -> None:
    drop_healing_tables("intake")
