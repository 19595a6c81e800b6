"""``grantflow up`` as a user runs it: the whole stack starts, answers, restarts what dies,
and Ctrl-C ends it."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.timeout(180)

SERVICES = ("intake", "review", "disbursement", "reporting", "workflows")
PROCESSES = ("tansu", "temporal", *SERVICES, "finance-sim")
READY_TIMEOUT = 90.0
RESTART_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(count: int) -> int:
    """A base B with B+1 .. B+count free.

    Taken below the kernel's ephemeral range (32768+): ports from ``bind(0)`` come from that
    range, and an outgoing connection of the starting stack could grab one before the
    service meant to listen on it does.
    """
    for _ in range(200):
        base = random.randrange(20_000, 32_000 - count)
        if all(_bindable(base + offset) for offset in range(1, count + 1)):
            return base
    raise RuntimeError("no block of free ports found")


class Ports:
    def __init__(self) -> None:
        base = free_port_block(8)
        self.http_base = base
        self.kafka = base + 6
        self.temporal = base + 7
        self.temporal_ui = base + 8

    def http(self, service: str) -> int:
        return self.http_base + 1 + SERVICES.index(service)

    def args(self) -> list[str]:
        return [
            "--kafka-port", str(self.kafka),
            "--temporal-port", str(self.temporal),
            "--temporal-ui-port", str(self.temporal_ui),
            "--http-port-base", str(self.http_base),
        ]  # fmt: skip


def clean_env() -> dict[str, str]:
    # The developer's own GRANTFLOW_* settings would point the stack elsewhere.
    return {key: value for key, value in os.environ.items() if not key.startswith("GRANTFLOW_")}


def start_up(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "grantflow", "up", *args],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


class Output:
    """Drains a pipe in a thread: a stack whose stdout nobody reads would stall on it."""

    def __init__(self, stream: Iterator[str], marker: str | None = None) -> None:
        self.lines: list[str] = []
        self.seen = threading.Event()
        self._marker = marker
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Iterator[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            if self._marker and self._marker in line:
                self.seen.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            time.sleep(0.1)
        return False

    def text(self) -> str:
        return "\n".join(self.lines)


def _start_time(pid: int) -> str | None:
    """The process's start time in ticks; tells a survivor from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # exited, only waiting for its parent to reap it
        return None
    return fields[19]


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid`` with its start time."""
    found: dict[int, str] = {}
    pending = [pid]
    while pending:
        parent = pending.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                for child in map(int, children.read_text().split()):
                    started = _start_time(child)
                    if started is not None and child not in found:
                        found[child] = started
                        pending.append(child)
    return found


def processes_mentioning(*needles: str) -> dict[int, str]:
    """Live processes whose command line or environment mentions any of ``needles``."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        text = seen.decode(errors="replace")
        if any(needle in text for needle in needles):
            started = _start_time(int(entry.name))
            if started is not None:
                found[int(entry.name)] = started
    return found


def survivors(tracked: dict[int, str], wait: float = 2.0) -> dict[int, str]:
    deadline = time.monotonic() + wait
    while True:
        alive = {pid: started for pid, started in tracked.items() if _start_time(pid) == started}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def describe(pids: dict[int, str]) -> str:
    lines = []
    for pid in pids:
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            lines.append(f"{pid}: {cmdline.decode(errors='replace')[:200]}")
    return "\n".join(lines)


def kill_all(process: subprocess.Popen[str], tracked: dict[int, str]) -> None:
    """Last resort after a failed assertion, so one failure does not poison later runs."""
    for pid in [process.pid, *tracked]:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def pid_files(tmp_path: Path) -> dict[str, int]:
    """What an operator finds in <state>/run: each running process's pid by its name."""
    run = tmp_path / ".grantflow" / "run"
    return {path.stem: int(path.read_text()) for path in sorted(run.glob("*.pid"))}


def topics_on(bootstrap: str) -> set[str]:
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def listed() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(listed())


def kill_and_see_restarts(tmp_path: Path, ports: Ports, stderr: Output) -> None:
    """kill -9 of a service, the broker and Temporal: each comes back, the broker with topics."""
    from shared.messaging.topics_admin import all_topic_names

    before = pid_files(tmp_path)
    assert set(before) == set(PROCESSES), before
    for name in ("review", "tansu", "temporal"):
        os.kill(before[name], signal.SIGKILL)
    for name in ("review", "tansu", "temporal"):
        said = f"grantflow up: {name} was killed by SIGKILL; restart 1 in 0.5 s"
        assert stderr.wait_for(said, 10), stderr.text()
    for name in ("review", "tansu", "temporal"):
        assert stderr.wait_for(f"grantflow up: {name} is ready again", RESTART_TIMEOUT), (
            stderr.text()
        )
    after = pid_files(tmp_path)
    assert set(after) == set(PROCESSES), after
    for name in PROCESSES:
        if name in ("review", "tansu", "temporal"):
            assert after[name] != before[name], name
        else:
            assert after[name] == before[name], f"{name} was restarted too"
        assert _start_time(after[name]) is not None, f"{name}'s pid file names no live process"
    # Tansu came back empty: the stack created every topic again.
    missing = set(all_topic_names()) - topics_on(f"127.0.0.1:{ports.kafka}")
    assert not missing, missing
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        response = client.get(f"http://127.0.0.1:{ports.http('review')}/readyz")
        assert response.status_code == 200, response.text
        response = client.get(f"http://127.0.0.1:{ports.temporal_ui}", follow_redirects=False)
        assert 200 <= response.status_code < 400, response.status_code


@pytest.mark.timeout(300)
def test_up_starts_everything_restarts_what_dies_and_sigint_stops_it(tmp_path: Path) -> None:
    ports = Ports()
    began = time.monotonic()
    process = start_up(tmp_path, *ports.args())
    assert process.stdout is not None and process.stderr is not None
    stdout = Output(process.stdout, marker="ready in")
    stderr = Output(process.stderr)
    tracked: dict[int, str] = {}
    try:
        if not stdout.seen.wait(READY_TIMEOUT):
            tail = "\n".join(stdout.lines[-60:])
            pytest.fail(
                f"no 'ready in' within {READY_TIMEOUT:.0f} s (exit code {process.poll()})\n"
                f"--- stdout (tail) ---\n{tail}\n--- stderr ---\n{stderr.text()}"
            )
        startup = time.monotonic() - began
        print(f"\ngrantflow up: ready after {startup:.1f} s (measured by the test)")
        ready_line = next(line for line in stdout.lines if "ready in" in line)
        print(f"grantflow up said: {ready_line}")

        with httpx.Client(timeout=5.0, trust_env=False) as client:
            for service in SERVICES:
                base = f"http://127.0.0.1:{ports.http(service)}"
                assert f"{base}/docs" in stdout.text(), f"{service} docs URL not printed"
                for path in ("/healthz", "/readyz"):
                    response = client.get(base + path)
                    assert response.status_code == 200, (service, path, response.text)
            ui = f"http://127.0.0.1:{ports.temporal_ui}"
            assert ui in stdout.text()
            response = client.get(ui, follow_redirects=False)
            assert 200 <= response.status_code < 400, response.status_code
        assert f"127.0.0.1:{ports.kafka}" in stdout.text()
        for role in ("applicant", "reviewer", "program_officer", "admin"):
            assert any(line.strip().startswith(role) and "eyJ" in line for line in stdout.lines)

        kill_and_see_restarts(tmp_path, ports, stderr)

        tracked = descendants(process.pid)
        tracked |= processes_mentioning(str(tmp_path), f"127.0.0.1:{ports.kafka}")
        tracked.pop(process.pid, None)
        # Tansu, Temporal, four services, the worker and the finance simulator.
        assert len(tracked) >= 8, describe(tracked)

        os.kill(process.pid, signal.SIGINT)
        stopping = time.monotonic()
        try:
            code = process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"grantflow up still running {STOP_TIMEOUT:.0f} s after SIGINT\n{stderr.text()}"
            )
        print(f"grantflow up: stopped {time.monotonic() - stopping:.1f} s after SIGINT")
        stdout.join(2)
        stderr.join(2)
        assert code == 0, stderr.text()
        assert pid_files(tmp_path) == {}, "pid files left behind"

        left = survivors(tracked)
        assert not left, f"processes left behind:\n{describe(left)}"
        left = survivors(processes_mentioning(str(tmp_path), f"127.0.0.1:{ports.kafka}"))
        assert not left, f"processes left behind:\n{describe(left)}"
    finally:
        if process.poll() is None:
            kill_all(process, tracked | descendants(process.pid))


@pytest.mark.parametrize("taken", ["kafka", "intake"])
def test_up_refuses_a_port_in_use(tmp_path: Path, taken: str) -> None:
    ports = Ports()
    port = ports.kafka if taken == "kafka" else ports.http("intake")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        process = start_up(tmp_path, *ports.args())
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            kill_all(process, descendants(process.pid))
            pytest.fail("grantflow up did not refuse the taken port")

    assert process.returncode == 1, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert f"port {port} ({taken}) is already in use" in lines[0]
    assert "--kafka-port" in lines[0] if taken == "kafka" else "--http-port-base" in lines[0]
    # Nothing started: no state directory, and nothing running on our behalf.
    assert not (tmp_path / ".grantflow").exists()
    assert not survivors(processes_mentioning(str(tmp_path)), wait=0)
