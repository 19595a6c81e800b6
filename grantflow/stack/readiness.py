"""Waiting for the stack's parts: ports, topics, Temporal's namespace, tables, ``/readyz``.

What is prepared (topics, namespace, tables, budgets) is prepared by ``grantflow setup``'s
own steps (``grantflow.setup``), so the embedded stack is set up as a deployment is.

Each wait has a deadline and ends in a ``StackStartError`` that says what did not answer
and its last answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Final

from grantflow.setup import SetupError
from grantflow.stack.options import ServiceSpec, StackOptions, StackStartError, host_port
from grantflow.stack.processes import Console

READY_TIMEOUT: Final = 60.0


async def in_daemon_thread(function: Callable[[], None], name: str) -> None:
    """Run blocking ``function`` without holding up shutdown.

    ``asyncio.to_thread`` would make ``asyncio.run`` wait for it on the way out, so a
    migration hanging on an unreachable database would defeat Ctrl-C.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def target() -> None:
        outcome: BaseException | None = None
        try:
            function()
        except BaseException as error:
            outcome = error
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=target, name=name, daemon=True).start()
    await done


async def all_of(*awaitables: Awaitable[None]) -> None:
    """Await all; the first failure cancels the rest instead of leaving them running."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def wait_tcp(
    host: str, port: int, deadline: float, what: str, console: Console | None = None
) -> None:
    last = "no answer"
    # An external server that is down would otherwise mean a minute of silence.
    mention_at = time.monotonic() + 5.0
    while True:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
        except (OSError, TimeoutError) as error:
            last = str(error) or type(error).__name__
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        if time.monotonic() > deadline:
            raise StackStartError(f"{what} at {host}:{port} did not answer: {last}")
        if console is not None and time.monotonic() > mention_at:
            console.error(f"grantflow up: still waiting for {what} at {host}:{port} ({last})")
            mention_at = float("inf")
        await asyncio.sleep(0.1)


@contextlib.contextmanager
def failing_the_start() -> Iterator[None]:
    """A step of ``grantflow setup`` that fails ends the start, with its message."""
    try:
        yield
    except SetupError as error:
        raise StackStartError(str(error)) from error


async def create_topics(options: StackOptions, deadline: float, console: Console) -> None:
    """Every topic, its dead-letter topic and the broker-epoch marker (``grantflow setup``)."""
    from grantflow.setup import prepare_topics

    host, port = host_port(options.kafka_bootstrap_servers)
    # Waiting for the port first keeps aiokafka from logging a connection error a try.
    await wait_tcp(host, port, deadline, "Kafka", console)
    with failing_the_start():
        await prepare_topics(options.stack_settings(), wait=_left(deadline))


async def connect_temporal(options: StackOptions, deadline: float, console: Console) -> None:
    """Temporal answers, with the namespace and search attributes (``grantflow setup``)."""
    from grantflow.setup import prepare_temporal

    host, port = host_port(options.temporal_address)
    await wait_tcp(host, port, deadline, "Temporal", console)
    with failing_the_start():
        await prepare_temporal(options.stack_settings(), wait=_left(deadline))
    if options.temporal_ui_port is not None:
        await wait_tcp("127.0.0.1", options.temporal_ui_port, deadline, "Temporal UI")


def migrate(options: StackOptions) -> None:
    """Each service's tables, in its own database (``grantflow setup``); blocking."""
    from grantflow.setup import migrate as migrate_all

    with failing_the_start():
        migrate_all({spec.name: spec.database_url for spec in options.services})


async def create_budgets(options: StackOptions, deadline: float) -> None:
    """The catalog programs' budgets (``grantflow setup``), once the tables are there."""
    from grantflow.setup import prepare_budgets

    with failing_the_start():
        await prepare_budgets(wait=_left(deadline))


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


async def wait_ready(spec: ServiceSpec) -> None:
    """The service's ``/readyz`` answers 200 (its database and the broker answer)."""
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    # trust_env=False: a proxy from the environment has no business with loopback.
    async with httpx.AsyncClient(timeout=3.0, trust_env=False) as client:
        while True:
            try:
                response = await client.get(f"{spec.url}/readyz")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}: {error}" if str(error) else repr(error)
            if time.monotonic() > deadline:
                raise StackStartError(
                    f"{spec.name} was not ready within {READY_TIMEOUT:.0f} s; "
                    f"last /readyz answer: {last}"
                )
            await asyncio.sleep(0.2)
