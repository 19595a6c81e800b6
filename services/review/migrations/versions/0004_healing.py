"""review: command receipts, dead letters, broker epoch, mail queue (shared.messaging).

Revision ID: review_0004
Revises: review_0003
"""

from shared.migrations import add_healing_tables, drop_healing_tables

revision = "review_0004"
down_revision = "review_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_healing_tables("review")


def downgrade() -> None:
    drop_healing_tables("review")
