"""Each service's migrations build exactly the tables its code declares, on both databases."""

from __future__ import annotations

import asyncio
from importlib import import_module
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from shared.db import create_engine
from shared.migrations import MIGRATED_SERVICES, persistence_module, upgrade, version_table


@pytest.mark.parametrize("service", MIGRATED_SERVICES)
async def test_the_migrations_create_exactly_the_tables_the_code_uses(
    isolated_database_url: str, service: str
) -> None:
    await asyncio.to_thread(upgrade, service, isolated_database_url)
    metadata: MetaData = import_module(persistence_module(service)).metadata

    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"version_table": version_table(service)}
        )
        return list(compare_metadata(context, metadata))

    engine = create_engine(isolated_database_url)
    try:
        async with engine.connect() as connection:
            found = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert found == []
