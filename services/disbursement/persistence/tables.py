"""The disbursement service's tables (migrated by ``services/disbursement/migrations``)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from shared.contracts.base import NOT_A_CONTRACT_FIELD
from shared.db import Id, UtcDateTime
from shared.messaging.tables import define_messaging_tables

metadata = MetaData()
messaging = define_messaging_tables(metadata, "disbursement")

_Key = String(200)

budgets = Table(
    "disbursement_budgets",
    metadata,
    Column("program_code", String(40), nullable=False),
    Column("cycle", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("program_code", "cycle", name="pk_disbursement_budgets"),
)

awards = Table(
    "disbursement_awards",
    metadata,
    Column("application_id", _Key, primary_key=True),
    Column("program_code", String(40), nullable=False),
    Column("cycle", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("awarded_minor", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Applications refused a reservation and still waiting, served in submission order.
waitlist = Table(
    "disbursement_waitlist",
    metadata,
    Column("application_id", _Key, primary_key=True),
    Column("program_code", String(40), nullable=False),
    Column("cycle", String(20), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("submitted_at", UtcDateTime, nullable=False),
)
Index(
    "ix_disbursement_waitlist_order",
    waitlist.c.program_code,
    waitlist.c.cycle,
    waitlist.c.submitted_at,
)

transactions = Table(
    "disbursement_transactions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("program_code", String(40), nullable=False),
    Column("cycle", String(20), nullable=False),
    Column("application_id", _Key, nullable=True),
    Column("kind", String(30), nullable=False),
    Column("reference", _Key, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # Why: set for a budget's opening balance and an officer's change of it.
    Column("reason", Text, nullable=True),
)

entries = Table(
    "disbursement_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "transaction_id",
        String(36),
        ForeignKey("disbursement_transactions.id", name="fk_disbursement_entries_transaction"),
        nullable=False,
    ),
    Column("program_code", String(40), nullable=False),
    Column("cycle", String(20), nullable=False),
    Column("application_id", _Key, nullable=True),
    Column("account", String(20), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
)
Index("ix_disbursement_entries_program", entries.c.program_code, entries.c.cycle, entries.c.account)
Index("ix_disbursement_entries_application", entries.c.application_id)

# The ledger's idempotency: a new command with the key of an earlier success gets that
# success again. Only successes are kept, so a refusal does not use up its key. (Repeats of
# one command, same command_id, are the shared command receipts' business.)
applied_keys = Table(
    "disbursement_applied_keys",
    metadata,
    Column("kind", String(20), nullable=False),
    Column("idempotency_key", _Key, nullable=False),
    Column("command_id", _Key, nullable=False),
    Column("answer_topic", String(255), nullable=False),
    Column("answer_payload", Text, nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("kind", "idempotency_key", name="pk_disbursement_applied_keys"),
)

instructions = Table(
    "disbursement_instructions",
    metadata,
    Column("instruction_id", _Key, primary_key=True),
    Column("application_id", _Key, nullable=False),
    Column("program_code", String(40), nullable=False),
    Column("cycle", String(20), nullable=False),
    Column("tranche", Integer, nullable=False),
    Column("command_id", _Key, nullable=False),
    Column("correlation_id", String(100), nullable=False),
    Column("payee_reference", _Key, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("award_amount_minor", BigInteger, nullable=False),
    Column("award_currency", String(3), nullable=False),
    Column("fx_rate", String(40), nullable=True),
    Column("value_date", Date, nullable=False),
    Column("memo", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("sends", Integer, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("finance_reference", _Key, nullable=True),
    Column("settled_amount_minor", BigInteger, nullable=True),
    Column("settled_currency", String(3), nullable=True),
    Column("settled_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_disbursement_instructions_due", instructions.c.status, instructions.c.due_at)
Index("ix_disbursement_instructions_application", instructions.c.application_id)


def _finance_receipts(name: str, subject: str) -> Table:
    """Every answer finance gave about one kind of request (``subject``: the request's id
    column), and what it did to the ledger."""
    return Table(
        name,
        metadata,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column(subject, _Key, nullable=False),
        Column("outcome", String(10), info=NOT_A_CONTRACT_FIELD, nullable=False),
        Column("disposition", String(20), nullable=False),
        Column("finance_reference", _Key, nullable=True),
        Column("amount_minor", BigInteger, nullable=True),
        Column("currency", String(3), nullable=True),
        Column("reason", Text, nullable=True),
        Column("channel", String(10), nullable=False),
        Column("event_id", String(36), nullable=True),
        Column("received_at", UtcDateTime, nullable=False),
        info={"subject": subject},
    )


receipts = _finance_receipts("disbursement_settlement_receipts", "instruction_id")
Index("ix_disbursement_receipts_instruction", receipts.c.instruction_id)
Index("ix_disbursement_receipts_event", receipts.c.event_id)

# Refunds finance is asked to collect (id: the RequestRefund idempotency key), and every
# answer finance gave about them: a receipt applied once per finance reference.
refunds = Table(
    "disbursement_refunds",
    metadata,
    Column("refund_id", _Key, primary_key=True),
    Column("application_id", _Key, nullable=False),
    Column("program_code", String(40), nullable=False),
    Column("cycle", String(20), nullable=False),
    Column("payer_reference", _Key, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("received_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("sends", Integer, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("correlation_id", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=True),
)
Index("ix_disbursement_refunds_due", refunds.c.status, refunds.c.due_at)
Index("ix_disbursement_refunds_application", refunds.c.application_id)

refund_receipts = _finance_receipts("disbursement_refund_receipts", "refund_id")
Index("ix_disbursement_refund_receipts_refund", refund_receipts.c.refund_id)

# Every delivery to the finance webhook and the answer it got: a repeated delivery (the same
# id, or the same signed request replayed) is answered the same and applied once.
webhook_deliveries = Table(
    "disbursement_webhook_deliveries",
    metadata,
    Column("delivery_id", String(100), primary_key=True),
    Column("signature", String(64), nullable=False, unique=True),
    Column("status_code", Integer, nullable=False),
    Column("answer", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
)

fx_rates = Table(
    "disbursement_fx_rates",
    metadata,
    Column("base_currency", String(3), nullable=False),
    Column("quote_currency", String(3), nullable=False),
    Column("rate", String(40), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("updated_by", String(200), nullable=False),
    PrimaryKeyConstraint("base_currency", "quote_currency", name="pk_disbursement_fx_rates"),
)

payees = Table(
    "disbursement_payees",
    metadata,
    Column("payee_reference", _Key, primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
