"""intake: mail through the shared queue; partner answers filed as answers to their request.

- Unsent mail moves from ``intake_notifications`` to the shared ``intake_mail_queue``
  (``shared.mail``), and the old table goes.
- A partner's answer already in the outbox is filed under its application's partner
  confirmation (``partner-confirmation:<application id>``), so that a request the
  workflow sends again gets the answer again (``shared.messaging.receipts``).
- The count of repeated requests per link goes: the command receipts answer a repeat.
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0004"
down_revision = "intake_0003"

_MAIL_COLUMNS = "kind, recipients, subject, body, application_id, created_at, attempts, last_error"
# The topic's name without the deployment's prefix (a migration keeps the name it was
# written with, whatever the code calls the topic later).
_PARTNER_CONFIRMED = "%grants.partner.confirmed.v1"


def upgrade() -> None:
    op.execute(
        f"INSERT INTO intake_mail_queue ({_MAIL_COLUMNS}) "
        f"SELECT {_MAIL_COLUMNS} FROM intake_notifications WHERE sent_at IS NULL ORDER BY id"
    )
    op.drop_index("ix_intake_notifications_unsent", "intake_notifications")
    op.drop_table("intake_notifications")
    op.execute(
        sa.text(
            "UPDATE intake_outbox SET subject = 'partner-confirmation:' || message_key "
            "WHERE subject IS NULL AND topic LIKE :topic"
        ).bindparams(topic=_PARTNER_CONFIRMED)
    )
    with op.batch_alter_table("intake_partner_links") as batch:
        batch.drop_column("requests")


def downgrade() -> None:
    with op.batch_alter_table("intake_partner_links") as batch:
        batch.add_column(sa.Column("requests", sa.Integer, nullable=False, server_default="1"))
    op.execute(
        sa.text("UPDATE intake_outbox SET subject = NULL WHERE topic LIKE :topic").bindparams(
            topic=_PARTNER_CONFIRMED
        )
    )
    op.create_table(
        "intake_notifications",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("application_id", sa.String(36), nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("recipients", sa.JSON, nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_intake_notifications_unsent", "intake_notifications", ["sent_at", "id"])
    op.execute(
        f"INSERT INTO intake_notifications ({_MAIL_COLUMNS}) "
        f"SELECT {_MAIL_COLUMNS} FROM intake_mail_queue WHERE sent_at IS NULL ORDER BY id"
    )
