"""review: columns as long as the contract fields they store.

City names of up to 200 characters came from intake into columns of 120: on PostgreSQL the
review request was dead-lettered and the application never got reviewers. Report ids are
up to 128 characters.
"""

import sqlalchemy as sa
from alembic import op

revision = "review_0006"
down_revision = "review_0005"

# (table, column, old length, new length)
WIDENED = (
    ("review_requests", "member_city", 120, 200),
    ("review_requests", "partner_city", 120, 200),
    ("review_requests", "report_id", 64, 128),
    ("review_reviewers", "home_city", 120, 200),
    ("review_reports", "report_id", 64, 128),
    ("review_tasks", "report_id", 64, 128),
)


def _alter(to_new: bool) -> None:
    tables: dict[str, list[tuple[str, int, int]]] = {}
    for table, column, old, new in WIDENED:
        tables.setdefault(table, []).append((column, old, new) if to_new else (column, new, old))
    for table, columns in tables.items():
        with op.batch_alter_table(table) as batch:
            for column, before, after in columns:
                batch.alter_column(column, existing_type=sa.String(before), type_=sa.String(after))


def upgrade() -> None:
    _alter(to_new=True)


def downgrade() -> None:
    _alter(to_new=False)
