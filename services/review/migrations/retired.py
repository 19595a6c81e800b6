"""Tables a later revision retired, as the revision that created them built them.

The retiring revision's downgrade builds them again through the same function, so a
downgrade restores exactly the table the upgrade took away.
"""

import sqlalchemy as sa
from alembic import op

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_When = sa.DateTime(timezone=True)


def create_commands_table() -> None:
    """``review_commands`` (revision 0002; retired by 0005's shared command receipts)."""
    op.create_table(
        "review_commands",
        sa.Column("command_id", sa.String(200), primary_key=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("handled_at", _When, nullable=False),
    )


def create_mail_table() -> None:
    """``review_mail`` (revision 0002; retired by 0005's shared mail queue)."""
    op.create_table(
        "review_mail",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("recipients", sa.JSON, nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("application_id", sa.String(64), nullable=True),
        sa.Column("created_at", _When, nullable=False),
        sa.Column("sent_at", _When, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_review_mail_unsent", "review_mail", ["sent_at", "id"])
