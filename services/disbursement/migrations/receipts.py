"""Finance's receipts, as revisions 0002 (payments) and 0006 (refunds) built them.

Both tables have one shape (``persistence.tables._finance_receipts``) and differ only in the
column that names what finance answered about; a later change to either is a new revision.
"""

import sqlalchemy as sa
from alembic import op

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Key = sa.String(200)
_When = sa.DateTime(timezone=True)


def create_receipts_table(name: str, subject: str) -> None:
    """Every answer finance gave about one kind of request (``subject``: its id column)."""
    op.create_table(
        name,
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column(subject, _Key, nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("disposition", sa.String(20), nullable=False),
        sa.Column("finance_reference", _Key, nullable=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=True),
        sa.Column("received_at", _When, nullable=False),
    )
