"""``grantflow up``'s supervisor: the start order, the ready banner, restarts, and the stop.

Start: Tansu and the Temporal dev server start first, in parallel; ``grantflow setup``'s
steps run meanwhile (topics, each service's tables, Temporal's namespace and search
attributes; in production the catalog's budgets); the four services and the finance simulator
start as soon as Kafka and the tables are there, the worker once Temporal answers. A
failure while starting (a port taken, a migration failing, a process exiting) ends the
run with what went wrong.

Once everything is ready, a process that exits or is killed is started again after a
pause that doubles from 0.5 s up to 30 s while it keeps failing (back to 0.5 s once a run
lasted a minute). Tansu comes back empty: its topics and epoch marker are created again
right after, and the services heal by themselves (``shared.messaging.epoch``). Temporal
comes back with the same database file, so its workflows go on. Only a signal (Ctrl-C,
SIGTERM) stops everything, within 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType
from typing import Any, Final

from grantflow.stack.banner import ready_banner
from grantflow.stack.infrastructure import tansu_argv, temporal_argv
from grantflow.stack.options import (
    FINANCE_SIM,
    PROCESS_NAMES,
    TANSU,
    TEMPORAL,
    ServiceSpec,
    StackOptions,
    StackStartError,
    finance_sim_argv,
    port_problems,
)
from grantflow.stack.processes import Backoff, Child, ChildProcesses, Console, how_it_ended
from grantflow.stack.readiness import (
    all_of,
    connect_temporal,
    create_budgets,
    create_topics,
    in_daemon_thread,
    migrate,
    wait_ready,
)
from shared.service import freeze_startup_heap

INFRASTRUCTURE_TIMEOUT: Final = 60.0
# Both phases together stay under 10 s, the promise made to whoever presses Ctrl-C.
SERVICES_GRACE: Final = 4.5
INFRASTRUCTURE_GRACE: Final = 3.5
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WATCH_INTERVAL: Final = 0.1

AfterRestart = Callable[[], Awaitable[str]]


class ChildExitedError(Exception):
    """A process ended while the stack was starting."""

    def __init__(self, child: Child, code: int) -> None:
        super().__init__(f"{child.name} {how_it_ended(code)}")
        self.child = child
        self.code = code


class Stack:
    def __init__(self, options: StackOptions, backoff: Backoff | None = None) -> None:
        self.options = options
        self.console = Console(max(len(name) for name in PROCESS_NAMES))
        self.processes = ChildProcesses(self.console, options.run_dir)
        self.backoff = backoff or Backoff()
        self.began = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self._stopping = False
        # What to wait for after a restart before saying the process is back.
        self._after_restart: dict[str, AfterRestart] = {}
        self._restarts: dict[str, asyncio.Task[None]] = {}

    # -- signals ---------------------------------------------------------------------

    def on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        if self._stopping or self._stop_requested:
            # A second Ctrl-C: skip the grace periods.
            self.processes.hurry = True
            return
        self._stop_requested = True
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)

    # -- the start -------------------------------------------------------------------

    def _launch(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        infrastructure: bool,
        after_restart: AfterRestart | None = None,
    ) -> None:
        child = self.processes.add(name, argv, env, infrastructure=infrastructure)
        if after_restart is not None:
            self._after_restart[name] = after_restart
        self.processes.start(child)

    def _launch_service(self, spec: ServiceSpec, env: dict[str, str]) -> asyncio.Future[None]:
        async def ready_again() -> str:
            await wait_ready(spec)
            return f"{spec.name} is ready again"

        self._launch(spec.name, spec.argv, env, infrastructure=False, after_restart=ready_again)
        return asyncio.ensure_future(wait_ready(spec))

    def _launch_infrastructure(self) -> None:
        options = self.options
        assert options.kafka_port is not None and options.temporal_port is not None
        assert options.temporal_ui_port is not None
        self._launch(
            TANSU,
            tansu_argv(options.kafka_port),
            dict(os.environ),
            infrastructure=True,
            after_restart=self._topics_again,
        )
        argv = temporal_argv(
            port=options.temporal_port,
            ui_port=options.temporal_ui_port,
            # The same file on every start: workflows survive a restart of the server. The
            # namespace and search attributes are set up as on a cluster (connect_temporal).
            db_file=options.temporal_db_file,
        )
        self._launch(
            TEMPORAL,
            argv,
            dict(os.environ),
            infrastructure=True,
            after_restart=self._temporal_again,
        )

    async def _topics_again(self) -> str:
        # Tansu keeps its data in memory: it came back without topics or epoch marker.
        deadline = time.monotonic() + INFRASTRUCTURE_TIMEOUT
        await create_topics(self.options, deadline, self.console)
        return f"{TANSU} is ready again, with its topics created again (it restarts empty)"

    async def _temporal_again(self) -> str:
        deadline = time.monotonic() + INFRASTRUCTURE_TIMEOUT
        await connect_temporal(self.options, deadline, self.console)
        return f"{TEMPORAL} is ready again"

    async def _start(self) -> None:
        options = self.options
        if not options.external:
            self._launch_infrastructure()
        deadline = time.monotonic() + INFRASTRUCTURE_TIMEOUT
        temporal = asyncio.ensure_future(connect_temporal(options, deadline, self.console))
        try:
            await all_of(
                create_topics(options, deadline, self.console),
                in_daemon_thread(lambda: migrate(options), "migrate"),
            )
            if options.settings.environment == "production":
                # Outside production the disbursement service seeds its demo budgets.
                await create_budgets(options, deadline)
            env = options.child_env()
            ready: list[asyncio.Future[None]] = []
            try:
                # The services need only Kafka and their tables: let them boot while Temporal
                # is still coming up, since five Python processes importing at once on a
                # small machine is the slowest part of the start.
                for spec in options.services:
                    if not spec.needs_temporal:
                        ready.append(self._launch_service(spec, env))
                if not options.external:
                    # The embedded stack has no finance system: play one, over the same
                    # public finance topics a real one would use.
                    self._launch(
                        FINANCE_SIM,
                        finance_sim_argv(options.finance_delay),
                        env,
                        infrastructure=False,
                    )
                await temporal
                for spec in options.services:
                    if spec.needs_temporal:
                        ready.append(self._launch_service(spec, env))
                await all_of(*ready)
            finally:
                for task in ready:
                    task.cancel()
                await asyncio.gather(*ready, return_exceptions=True)
        finally:
            temporal.cancel()
            await asyncio.gather(temporal, return_exceptions=True)

    # -- supervision -----------------------------------------------------------------

    async def _watch(self, *, supervising: bool) -> None:
        """Notice every process that ended: fail the start, or restart it once started."""
        while True:
            for child in self.processes.children:
                code = child.exit_code()
                if code is None:
                    continue
                if not supervising:
                    raise ChildExitedError(child, code)
                self.processes.ended(child)
                self._restart_later(child, how_it_ended(code))
            await asyncio.sleep(WATCH_INTERVAL)

    def _restart_later(self, child: Child, what_happened: str) -> None:
        pause = child.plan_restart(self.backoff)
        self.console.error(
            f"grantflow up: {child.name} {what_happened}; restart {child.restarts} in {pause:.1f} s"
        )
        previous = self._restarts.pop(child.name, None)
        if previous is not None and previous is not asyncio.current_task():
            previous.cancel()  # still waiting for the run that just ended to be ready
        self._restarts[child.name] = asyncio.ensure_future(self._restart(child, pause))

    async def _restart(self, child: Child, pause: float) -> None:
        await asyncio.sleep(pause)
        if self._stop_requested:
            return
        try:
            self.processes.start(child)
        except OSError as error:
            child.started_at = time.monotonic()
            self._restart_later(child, f"could not be started ({error})")
            return
        after = self._after_restart.get(child.name)
        if after is None:
            return
        try:
            self.console.error(f"grantflow up: {await after()}")
        except StackStartError as error:
            self.console.error(f"grantflow up: after restarting {child.name}: {error}")
        except Exception as error:  # a broken check must not end the supervision
            self.console.error(f"grantflow up: after restarting {child.name}: {error!r}")

    # -- the run ---------------------------------------------------------------------

    async def run(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested:
            return 0
        for flag in self.options.ignored_options:
            self.console.error(f"grantflow up: {flag} is ignored with --external")
        stop = asyncio.ensure_future(self._stop.wait())
        watch = asyncio.ensure_future(self._watch(supervising=False))
        start = asyncio.ensure_future(self._start())
        try:
            await asyncio.wait({stop, watch, start}, return_when=asyncio.FIRST_COMPLETED)
            if stop.done():
                return 0
            if start.done():
                start.result()
                self.console.say(ready_banner(self.options, time.monotonic() - self.began))
                # What the start imported (Temporal, Kafka, SQLAlchemy, every service's
                # settings) stays for good: out of the collector's sight, the interpreter's
                # last collection on the way out takes milliseconds, not seconds of the
                # 10 s promised to Ctrl-C.
                freeze_startup_heap()
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
                watch = asyncio.ensure_future(self._watch(supervising=True))
                await asyncio.wait({stop, watch}, return_when=asyncio.FIRST_COMPLETED)
                if stop.done():
                    return 0
            watch.result()
            raise AssertionError("the exit watcher returned")
        except StackStartError as failure:
            self.console.error(f"grantflow up: {failure}")
            return 1
        except ChildExitedError as exited:
            self._report_exit(exited)
            return 1
        finally:
            tasks = [stop, watch, start, *self._restarts.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _report_exit(self, exited: ChildExitedError) -> None:
        child = exited.child
        tail = self.processes.last_words(child)
        lines = [f"grantflow up: {child.name} {how_it_ended(exited.code)} during startup"]
        if tail:
            lines.append(f"its last {len(tail)} lines:")
            lines += [f"  {child.name} | {line}" for line in tail]
        self.console.error("\n".join(lines))

    def stop_everything(self) -> None:
        """Our processes first (they flush to Kafka on the way out), then the brokers."""
        self._stopping = True
        if any(child.running for child in self.processes.children):
            self.console.error("grantflow up: stopping everything")
        self.processes.stop_all(SERVICES_GRACE, INFRASTRUCTURE_GRACE)


def run_stack(options: StackOptions) -> int:
    """Start the stack, serve until a signal, stop everything; the process's exit code."""
    problems = port_problems(options)
    if problems:
        # Nothing has started yet, so there is nothing to clean up.
        for line in problems:
            print(line, file=sys.stderr)
        return 1
    options.state_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(options)
    stack.processes.clear_stale_pid_files(PROCESS_NAMES)
    previous: dict[signal.Signals, Any] = {}
    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, stack.on_signal)
    try:
        return asyncio.run(stack.run())
    finally:
        # Also on an exception of our own: a broken supervisor must not leave a stack behind.
        stack.stop_everything()
        for stopper, handler in previous.items():
            signal.signal(stopper, handler if handler is not None else signal.SIG_DFL)
