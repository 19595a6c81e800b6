"""review: outbox and inbox tables.

Revision ID: review_0001
Revises:
"""

from shared.migrations import create_messaging_tables, drop_messaging_tables

revision = "review_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables("review")


def downgrade() -> None:
    drop_messaging_tables("review")
