"""The outbox and inbox tables that every service keeps next to its own tables."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_Id = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class MessagingTables:
    outbox: Table
    inbox: Table


def define_messaging_tables(metadata: MetaData, service: str) -> MessagingTables:
    """Add ``<service>_outbox`` and ``<service>_inbox`` to a service's metadata.

    The service name prefixes the tables so that services may share one PostgreSQL
    database and still never touch each other's tables.
    """
    outbox = Table(
        f"{service}_outbox",
        metadata,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("topic", String(255), nullable=False),
        Column("message_key", String(255), nullable=False),
        Column("body", Text, nullable=False),
        Column("headers", Text, nullable=False, server_default="{}"),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text, nullable=True),
    )
    Index(f"ix_{service}_outbox_unsent", outbox.c.sent_at, outbox.c.id)
    inbox = Table(
        f"{service}_inbox",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("consumer", String(120), primary_key=True),
        Column("topic", String(255), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    return MessagingTables(outbox=outbox, inbox=inbox)
