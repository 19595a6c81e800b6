"""disbursement: budgets, the double-entry ledger, commands, instructions, settlements."""

import sqlalchemy as sa
from alembic import op

from services.disbursement.migrations.receipts import create_receipts_table
from services.disbursement.migrations.retired import create_commands_table

revision = "disbursement_0002"
down_revision = "disbursement_0001"

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Key = sa.String(200)
_When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "disbursement_budgets",
        sa.Column("program_code", sa.String(40), nullable=False),
        sa.Column("cycle", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", _When, nullable=False),
        sa.PrimaryKeyConstraint("program_code", "cycle", name="pk_disbursement_budgets"),
    )
    op.create_table(
        "disbursement_awards",
        sa.Column("application_id", _Key, primary_key=True),
        sa.Column("program_code", sa.String(40), nullable=False),
        sa.Column("cycle", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("awarded_minor", sa.BigInteger, nullable=False),
        sa.Column("updated_at", _When, nullable=False),
    )
    op.create_table(
        "disbursement_transactions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("program_code", sa.String(40), nullable=False),
        sa.Column("cycle", sa.String(20), nullable=False),
        sa.Column("application_id", _Key, nullable=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("reference", _Key, nullable=True),
        sa.Column("created_at", _When, nullable=False),
    )
    op.create_table(
        "disbursement_entries",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column(
            "transaction_id",
            sa.String(36),
            sa.ForeignKey(
                "disbursement_transactions.id", name="fk_disbursement_entries_transaction"
            ),
            nullable=False,
        ),
        sa.Column("program_code", sa.String(40), nullable=False),
        sa.Column("cycle", sa.String(20), nullable=False),
        sa.Column("application_id", _Key, nullable=True),
        sa.Column("account", sa.String(20), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
    )
    op.create_index(
        "ix_disbursement_entries_program",
        "disbursement_entries",
        ["program_code", "cycle", "account"],
    )
    op.create_index(
        "ix_disbursement_entries_application", "disbursement_entries", ["application_id"]
    )
    create_commands_table()
    op.create_table(
        "disbursement_instructions",
        sa.Column("instruction_id", _Key, primary_key=True),
        sa.Column("application_id", _Key, nullable=False),
        sa.Column("program_code", sa.String(40), nullable=False),
        sa.Column("cycle", sa.String(20), nullable=False),
        sa.Column("tranche", sa.Integer, nullable=False),
        sa.Column("command_id", _Key, nullable=False),
        sa.Column("correlation_id", sa.String(100), nullable=False),
        sa.Column("payee_reference", _Key, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("award_amount_minor", sa.BigInteger, nullable=False),
        sa.Column("award_currency", sa.String(3), nullable=False),
        sa.Column("fx_rate", sa.String(40), nullable=True),
        sa.Column("value_date", sa.Date, nullable=False),
        sa.Column("memo", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("sends", sa.Integer, nullable=False),
        sa.Column("due_at", _When, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("finance_reference", _Key, nullable=True),
        sa.Column("settled_amount_minor", sa.BigInteger, nullable=True),
        sa.Column("settled_currency", sa.String(3), nullable=True),
        sa.Column("settled_at", _When, nullable=True),
        sa.Column("created_at", _When, nullable=False),
    )
    op.create_index(
        "ix_disbursement_instructions_due", "disbursement_instructions", ["status", "due_at"]
    )
    op.create_index(
        "ix_disbursement_instructions_application",
        "disbursement_instructions",
        ["application_id"],
    )
    create_receipts_table("disbursement_settlement_receipts", "instruction_id")
    op.create_index(
        "ix_disbursement_receipts_instruction",
        "disbursement_settlement_receipts",
        ["instruction_id"],
    )
    op.create_index(
        "ix_disbursement_receipts_event", "disbursement_settlement_receipts", ["event_id"]
    )
    op.create_table(
        "disbursement_fx_rates",
        sa.Column("base_currency", sa.String(3), nullable=False),
        sa.Column("quote_currency", sa.String(3), nullable=False),
        sa.Column("rate", sa.String(40), nullable=False),
        sa.Column("updated_at", _When, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("base_currency", "quote_currency", name="pk_disbursement_fx_rates"),
    )
    op.create_table(
        "disbursement_payees",
        sa.Column("payee_reference", _Key, primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("updated_at", _When, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("disbursement_payees")
    op.drop_table("disbursement_fx_rates")
    op.drop_index("ix_disbursement_receipts_event", "disbursement_settlement_receipts")
    op.drop_index("ix_disbursement_receipts_instruction", "disbursement_settlement_receipts")
    op.drop_table("disbursement_settlement_receipts")
    op.drop_index("ix_disbursement_instructions_application", "disbursement_instructions")
    op.drop_index("ix_disbursement_instructions_due", "disbursement_instructions")
    op.drop_table("disbursement_instructions")
    op.drop_index("ix_disbursement_commands_key", "disbursement_commands")
    op.drop_table("disbursement_commands")
    op.drop_index("ix_disbursement_entries_application", "disbursement_entries")
    op.drop_index("ix_disbursement_entries_program", "disbursement_entries")
    op.drop_table("disbursement_entries")
    op.drop_table("disbursement_transactions")
    op.drop_table("disbursement_awards")
    op.drop_table("disbursement_budgets")
