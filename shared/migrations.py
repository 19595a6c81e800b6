"""Alembic, once per service: each service migrates only its own tables.

Every service keeps its migrations in ``services/<name>/migrations`` and its own version
table (``alembic_version_<name>``), so all services can share one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
from importlib import import_module
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from shared.db import create_engine

MIGRATED_SERVICES = ("intake", "review", "disbursement", "reporting")


def alembic_config(service: str, database_url: str) -> Config:
    package = import_module(f"services.{service}")
    assert package.__file__ is not None
    config = Config()
    config.set_main_option("script_location", str(Path(package.__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url)
    config.attributes["service"] = service
    return config


def upgrade(service: str, database_url: str, revision: str = "head") -> None:
    """Bring one service's tables to ``revision``; run outside an event loop."""
    command.upgrade(alembic_config(service, database_url), revision)


def version_table(service: str) -> str:
    return f"alembic_version_{service}"


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    service = context.config.attributes["service"]
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    table = version_table(service)
    if context.is_offline_mode():
        context.configure(
            url=url, literal_binds=True, target_metadata=target_metadata, version_table=table
        )
        with context.begin_transaction():
            context.run_migrations()
        return

    def migrate(connection: Connection) -> None:
        # Batch mode lets later migrations alter SQLite tables (copy-and-move).
        context.configure(
            connection=connection,
            render_as_batch=True,
            target_metadata=target_metadata,
            version_table=table,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())


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


def drop_messaging_tables(service: str) -> None:
    op.drop_table(f"{service}_inbox")
    op.drop_index(f"ix_{service}_outbox_unsent", f"{service}_outbox")
    op.drop_table(f"{service}_outbox")
