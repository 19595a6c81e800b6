"""workflows: outbox, inbox and the healing tables (the workflow's events go out through
an outbox of their own, so that a broker that forgets them gets them again).
"""

from shared.migrations.messaging import (
    add_healing_tables,
    create_messaging_tables,
    drop_healing_tables,
    drop_messaging_tables,
)

revision = "workflows_0001"
down_revision = None


def upgrade() -> None:
    create_messaging_tables("workflows")
    add_healing_tables("workflows")


def downgrade() -> None:
    drop_healing_tables("workflows")
    drop_messaging_tables("workflows")
