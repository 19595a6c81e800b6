"""disbursement: the ledger's applied idempotency keys replace its own command table.

Repeats of one command (same ``command_id``) are answered by the shared command receipts
(``disbursement_command_receipts``, migration 0003). What is left of
``disbursement_commands`` is the ledger's rule that a new command with the idempotency key
of an earlier success gets that success: its successes (payments excepted: an instruction
is its own record) move to ``disbursement_applied_keys``, the first success of each key.
"""

import json

import sqlalchemy as sa
from alembic import op

from services.disbursement.migrations.retired import create_commands_table

revision = "disbursement_0004"
down_revision = "disbursement_0003"

_Key = sa.String(200)
_When = sa.DateTime(timezone=True)

_commands = sa.table(
    "disbursement_commands",
    sa.column("command_id", sa.String),
    sa.column("kind", sa.String),
    sa.column("idempotency_key", sa.String),
    sa.column("application_id", sa.String),
    sa.column("outcome", sa.String),
    sa.column("result_topic", sa.String),
    sa.column("result_payload", sa.Text),
    sa.column("received_at", _When),
)
_applied = sa.table(
    "disbursement_applied_keys",
    sa.column("kind", sa.String),
    sa.column("idempotency_key", sa.String),
    sa.column("command_id", sa.String),
    sa.column("answer_topic", sa.String),
    sa.column("answer_payload", sa.Text),
    sa.column("applied_at", _When),
)


def upgrade() -> None:
    op.create_table(
        "disbursement_applied_keys",
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("idempotency_key", _Key, nullable=False),
        sa.Column("command_id", _Key, nullable=False),
        sa.Column("answer_topic", sa.String(255), nullable=False),
        sa.Column("answer_payload", sa.Text, nullable=False),
        sa.Column("applied_at", _When, nullable=False),
        sa.PrimaryKeyConstraint("kind", "idempotency_key", name="pk_disbursement_applied_keys"),
    )
    successes = op.get_bind().execute(
        sa.select(_commands)
        .where(
            _commands.c.outcome == "done",
            _commands.c.result_topic.is_not(None),
            _commands.c.result_payload.is_not(None),
            _commands.c.kind != "pay",
        )
        .order_by(_commands.c.received_at)
    )
    first: dict[tuple[str, str], dict[str, object]] = {}
    for row in successes:
        first.setdefault(
            (row.kind, row.idempotency_key),
            {
                "kind": row.kind,
                "idempotency_key": row.idempotency_key,
                "command_id": row.command_id,
                "answer_topic": row.result_topic,
                "answer_payload": row.result_payload,
                "applied_at": row.received_at,
            },
        )
    if first:
        op.bulk_insert(_applied, list(first.values()))
    op.drop_index("ix_disbursement_commands_key", "disbursement_commands")
    op.drop_table("disbursement_commands")


def downgrade() -> None:
    create_commands_table()
    rows = op.get_bind().execute(sa.select(_applied)).all()
    if rows:
        op.bulk_insert(
            _commands,
            [
                {
                    "command_id": row.command_id,
                    "kind": row.kind,
                    "idempotency_key": row.idempotency_key,
                    # The old table wants it; every answer payload carries it.
                    "application_id": _application_id(row.answer_payload),
                    "outcome": "done",
                    "result_topic": row.answer_topic,
                    "result_payload": row.answer_payload,
                    "received_at": row.applied_at,
                }
                for row in rows
            ],
        )
    op.drop_table("disbursement_applied_keys")


def _application_id(payload: str) -> str:
    return str(json.loads(payload)["application_id"])
