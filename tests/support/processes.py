"""Real infrastructure for tests: Tansu, Temporal servers, free ports and TCP proxies.

The servers are the ones ``grantflow up`` runs, found and started the same way
(``grantflow.stack.infrastructure``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Callable, Iterable
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
    "TcpProxy",
    "TemporalDevServer",
    "free_port",
    "migrated_sqlite",
    "round_robin",
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


Upstreams = Callable[[], Iterable[tuple[str, int]]]


class TcpProxy:
    """A TCP proxy on loopback, in a thread of its own: each connection goes to the first of
    ``upstreams()`` that accepts it. It can refuse connections for a while (an outage)."""

    def __init__(self, upstreams: Upstreams) -> None:
        self.upstreams = upstreams
        self.port = free_port()
        self._refusing = False
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for address in self.upstreams():
            with contextlib.suppress(OSError):
                return await asyncio.open_connection(*address)
        return None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None if self._refusing else await self._upstream()
        if upstream is None:
            writer.transport.abort()
            return
        upstream_reader, upstream_writer = upstream
        self._open |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        self._open -= {writer, upstream_writer}

    def refuse(self, seconds: float) -> None:
        """Drop every connection and refuse new ones for ``seconds``."""

        def begin() -> None:
            self._refusing = True
            for writer in list(self._open):
                writer.transport.abort()
            self._loop.call_later(seconds, self._end_refusal)

        self._loop.call_soon_threadsafe(begin)

    def _end_refusal(self) -> None:
        self._refusing = False

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def round_robin(ports: list[int]) -> Upstreams:
    """Upstreams for a proxy that spreads connections over ``ports`` (on loopback), starting
    each connection at the next one and skipping those that refuse: what a Kubernetes
    Service does over its pods."""
    start = itertools.cycle(range(len(ports)))

    def upstreams() -> list[tuple[str, int]]:
        first = next(start)
        return [("127.0.0.1", port) for port in ports[first:] + ports[:first]]

    return upstreams
