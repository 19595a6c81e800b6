"""What every benchmark needs: a percentile, CPU time from /proc, and a PostgreSQL database
of its own."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import asyncpg

ADMIN_DSN = os.environ.get(
    "GRANTFLOW_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def cpu_seconds(*pids: int) -> float:
    """User and system CPU of processes and their waited-for children, from /proc (Linux)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        # After the name: state is field 3; utime, stime, cutime, cstime are fields 14-17.
        total += sum(int(value) for value in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


async def create_database() -> str:
    """A new, empty database; its SQLAlchemy URL. Raises when PostgreSQL does not answer."""
    name = f"grantflow_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


async def drop_database(url: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
