"""intake: outbox and inbox tables.

Revision ID: intake_0001
Revises:
"""

from shared.migrations import create_messaging_tables, drop_messaging_tables

revision = "intake_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables("intake")


def downgrade() -> None:
    drop_messaging_tables("intake")
