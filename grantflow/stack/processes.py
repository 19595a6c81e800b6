"""Process control for ``grantflow up``: spawning, output, pid files, restarts and stopping.

Every child runs in its own process group (its pid is the group id), so stopping it can
signal the whole group and leave no orphan behind. Its output is pumped line by line to
the console by a reader thread, with its last lines kept for the report of a failure.
While a child runs, its pid is in ``<state dir>/run/<name>.pid``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

TAIL_LINES: Final = 25
PR_SET_PDEATHSIG: Final = 1


class Console:
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


@dataclass(frozen=True)
class Backoff:
    """The pause before a restart: growing while a child keeps failing, reset once it ran."""

    first: float = 0.5
    longest: float = 30.0
    settled_after: float = 60.0

    def pause(self, failures_in_a_row: int) -> float:
        return min(self.first * 2.0 ** max(failures_in_a_row - 1, 0), self.longest)


@dataclass
class Child:
    """One supervised process: how to start it, and the current run of it if any."""

    name: str
    argv: list[str]
    env: dict[str, str]
    infrastructure: bool
    process: subprocess.Popen[bytes] | None = None
    reader: threading.Thread | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures_in_a_row: int = 0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        """The code of the current run once it ended; None while it runs (or none runs)."""
        return None if self.process is None else self.process.poll()

    def plan_restart(self, backoff: Backoff) -> float:
        """Count a restart of a run that just ended; the pause before it."""
        settled = time.monotonic() - self.started_at >= backoff.settled_after
        self.failures_in_a_row = 1 if settled else self.failures_in_a_row + 1
        self.restarts += 1
        return backoff.pause(self.failures_in_a_row)


def how_it_ended(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


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


class ChildProcesses:
    """Starts children, keeps their pid files, and stops them group by group."""

    def __init__(self, console: Console, run_dir: Path) -> None:
        self.console = console
        self.run_dir = run_dir
        self.children: list[Child] = []
        self.hurry = False
        self._pre_exec = _die_with_parent()

    def add(
        self, name: str, argv: Sequence[str], env: dict[str, str], *, infrastructure: bool
    ) -> Child:
        child = Child(name, list(argv), env, infrastructure)
        self.children.append(child)
        return child

    def clear_stale_pid_files(self, names: Sequence[str]) -> None:
        """Pid files left by a run that could not clean up (it was killed) name no child of ours."""
        for name in names:
            self._pid_file(name).unlink(missing_ok=True)

    def start(self, child: Child) -> None:
        """Start a run of ``child``; from the main thread (see ``_die_with_parent``)."""
        process = subprocess.Popen(
            child.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child.env,
            start_new_session=True,
            preexec_fn=self._pre_exec,
        )
        child.process = process
        child.started_at = time.monotonic()
        self._write_pid_file(child.name, process.pid)
        child.reader = threading.Thread(
            target=self._pump, args=(child, process), name=f"output-{child.name}", daemon=True
        )
        child.reader.start()

    def ended(self, child: Child) -> None:
        """Clean up after a run that ended by itself: its pid file, and what it left behind."""
        if child.process is not None:
            # Also for a leader that exited: its group may still hold what it started.
            _signal_group(child.process, signal.SIGKILL)
            self._remove_pid_file(child.name, child.process.pid)
        child.process = None

    def last_words(self, child: Child) -> list[str]:
        if child.reader is not None:
            # Its last lines may still be in the pipe.
            child.reader.join(timeout=1.0)
        return list(child.tail)

    def _pump(self, child: Child, process: subprocess.Popen[bytes]) -> None:
        stream = process.stdout
        assert stream is not None
        with stream:
            for raw in iter(stream.readline, b""):
                text = raw.decode(errors="replace").rstrip("\r\n")
                child.tail.append(text)
                self.console.child_line(child.name, text)

    # -- pid files -------------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _write_pid_file(self, name: str, pid: int) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self._pid_file(name)
        # Whole or absent, never half written, for whoever reads it to kill the process.
        partial = path.with_suffix(".pid.partial")
        partial.write_text(f"{pid}\n")
        partial.replace(path)

    def _remove_pid_file(self, name: str, pid: int) -> None:
        path = self._pid_file(name)
        with contextlib.suppress(OSError, ValueError):
            if int(path.read_text().strip()) == pid:
                path.unlink()

    # -- stopping --------------------------------------------------------------------

    def stop_all(self, services_grace: float, infrastructure_grace: float) -> None:
        """Our processes first (they flush to Kafka on the way out), then the brokers."""
        ours = [child for child in self.children if not child.infrastructure]
        infrastructure = [child for child in self.children if child.infrastructure]
        self._stop_group(ours, services_grace)
        self._stop_group(infrastructure, infrastructure_grace)
        for child in self.children:
            if child.reader is not None:
                child.reader.join(timeout=0.5)
        self.children.clear()

    def _stop_group(self, children: list[Child], grace: float) -> None:
        processes = [(child, child.process) for child in children if child.process is not None]
        if not processes:
            return
        for _child, process in processes:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while (
            not self.hurry
            and time.monotonic() < deadline
            and any(process.poll() is None for _child, process in processes)
        ):
            time.sleep(0.05)
        for _child, process in processes:
            # Also for leaders that exited: the group may still hold what they left behind.
            _signal_group(process, signal.SIGKILL)
        for child, process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1.0)
            self._remove_pid_file(child.name, process.pid)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    # The leader's pid is the group id (start_new_session); the group outlives a leader
    # that exited first, and whatever it left behind still gets the signal.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
