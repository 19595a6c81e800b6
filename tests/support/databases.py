"""PostgreSQL databases of a test's own, created on the server the suite was given."""

from __future__ import annotations

import os
import uuid

import asyncpg

POSTGRES_ADMIN_DSN = os.environ.get(
    "GRANTFLOW_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def postgres_database_url(name: str) -> str:
    """The SQLAlchemy URL of database ``name`` on the suite's server."""
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


async def create_postgres_database(prefix: str = "grantflow_test") -> str:
    """A new, empty database; returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await postgres_admin(f'CREATE DATABASE "{name}"')
    return name


async def drop_postgres_database(name: str) -> None:
    await postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def postgres_admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
