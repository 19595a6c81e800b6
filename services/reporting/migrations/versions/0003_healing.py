"""reporting: command receipts, dead letters, broker epoch, mail queue (shared.messaging).

Revision ID: reporting_0003
Revises: reporting_0002
"""

from shared.migrations import add_healing_tables, drop_healing_tables

revision = "reporting_0003"
down_revision = "reporting_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_healing_tables("reporting")


def downgrade() -> None:
    drop_healing_tables("reporting")
