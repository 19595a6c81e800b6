"""Alembic, once per service: each service migrates only its own tables.

Every service keeps its migrations in ``services/<name>/migrations`` and its own version
table (``alembic_version_<name>``), so all services can share one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
from importlib import import_module
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from shared.db import create_engine

MIGRATED_SERVICES = ("intake", "review", "disbursement", "reporting", "workflows")


def _package(service: str) -> str:
    """Where a service's code lives: ``services/<name>``, and the workflows process."""
    return "workflows" if service == "workflows" else f"services.{service}"


def persistence_module(service: str) -> str:
    return f"{_package(service)}.persistence"


def alembic_config(service: str, database_url: str) -> Config:
    package = import_module(_package(service))
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
