"""The migration steps every service shares: its messaging tables (``shared.messaging``).

Each step is frozen as it was first applied: deployments have run it, so a later change to
the tables is a new step, never an edit of one of these.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

# What a revision module exposes as its ``upgrade`` or ``downgrade``.
Step = Callable[[], None]


def messaging_revision(service: str) -> tuple[Step, Step]:
    """The upgrade and downgrade of a service's first revision: its outbox and inbox."""
    return _reversible(service, create_messaging_tables, drop_messaging_tables)


def healing_revision(service: str) -> tuple[Step, Step]:
    """The upgrade and downgrade of the revision that adds what lets a service heal."""
    return _reversible(service, add_healing_tables, drop_healing_tables)


def _reversible(
    service: str, apply: Callable[[str], None], undo: Callable[[str], None]
) -> tuple[Step, Step]:
    # Named functions: alembic logs a step by its function's name.
    def upgrade() -> None:
        apply(service)

    def downgrade() -> None:
        undo(service)

    return upgrade, downgrade


def create_messaging_tables(service: str) -> None:
    """Migration step shared by every service: its outbox and inbox tables."""
    op.create_table(
        f"{service}_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("message_key", sa.String(255), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("headers", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index(f"ix_{service}_outbox_unsent", f"{service}_outbox", ["sent_at", "id"])
    op.create_table(
        f"{service}_inbox",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("consumer", sa.String(120), primary_key=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )


def add_healing_tables(service: str) -> None:
    """Migration step shared by every service: what lets it heal (``shared.messaging``).

    Command receipts, persisted failure counts, dead letters, the broker epoch, the mail
    queue, and the ``subject`` that files an outbox row as an answer. Inbox rows are
    renamed to one consumer per topic (``<service>.<topic>``), the consumer helper's names.
    """
    when = sa.DateTime(timezone=True)
    ident = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    with op.batch_alter_table(f"{service}_outbox") as batch:
        batch.add_column(sa.Column("subject", sa.String(200), nullable=True))
        batch.create_index(f"ix_{service}_outbox_subject", ["subject"])
    op.execute(
        sa.text(f"UPDATE {service}_inbox SET consumer = :prefix || topic").bindparams(
            prefix=f"{service}."
        )
    )
    op.create_table(
        f"{service}_command_receipts",
        sa.Column("command_id", sa.String(200), primary_key=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("handled_at", when, nullable=False),
    )
    op.create_table(
        f"{service}_consumer_failures",
        sa.Column("message_ref", sa.String(455), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("updated_at", when, nullable=False),
    )
    op.create_table(
        f"{service}_dead_letters",
        sa.Column("id", ident, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", ident, nullable=False),
        sa.Column("message_key", sa.String(255), nullable=True),
        sa.Column("consumer_group", sa.String(120), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("body_base64", sa.Text, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=True),
        sa.Column("dead_lettered_at", when, nullable=False),
        sa.Column("replayed_at", when, nullable=True),
        sa.Column("replays", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index(f"ix_{service}_dead_letters_topic", f"{service}_dead_letters", ["topic", "id"])
    op.create_table(
        f"{service}_broker_epoch",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("epoch", sa.String(36), nullable=False),
        sa.Column("seen_at", when, nullable=False),
    )
    op.create_table(
        f"{service}_mail_queue",
        sa.Column("id", ident, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(60), nullable=False),
        sa.Column("recipients", sa.JSON, nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("application_id", sa.String(255), nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.Column("sent_at", when, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index(f"ix_{service}_mail_queue_unsent", f"{service}_mail_queue", ["sent_at", "id"])


def drop_healing_tables(service: str) -> None:
    for table in (
        "mail_queue",
        "broker_epoch",
        "dead_letters",
        "consumer_failures",
        "command_receipts",
    ):
        op.drop_table(f"{service}_{table}")
    with op.batch_alter_table(f"{service}_outbox") as batch:
        batch.drop_index(f"ix_{service}_outbox_subject")
        batch.drop_column("subject")


def drop_messaging_tables(service: str) -> None:
    op.drop_table(f"{service}_inbox")
    op.drop_index(f"ix_{service}_outbox_unsent", f"{service}_outbox")
    op.drop_table(f"{service}_outbox")
