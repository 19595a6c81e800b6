"""reporting: command receipts, dead letters, broker epoch, mail queue (shared.messaging).

Reporting's consumer kept two inboxes, ``reporting.analytics`` (every event) and
``reporting.obligations`` (report requests, overdue notices, reviews), where the shared
consumer keeps one per topic. An event both inboxes noted becomes one row under its
topic's name: the analytics row stays, its obligations twin goes first.
"""

import sqlalchemy as sa
from alembic import op

from shared.migrations.messaging import add_healing_tables, drop_healing_tables

revision = "reporting_0003"
down_revision = "reporting_0002"


def upgrade() -> None:
    op.execute(
        sa.text(
            "DELETE FROM reporting_inbox WHERE consumer = 'reporting.obligations' AND event_id IN "
            "(SELECT event_id FROM reporting_inbox WHERE consumer = 'reporting.analytics')"
        )
    )
    add_healing_tables("reporting")


def downgrade() -> None:
    drop_healing_tables("reporting")
