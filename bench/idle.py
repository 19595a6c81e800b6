"""CPU of the whole embedded stack at rest: `grantflow up`, nothing to do, per process.

    python -m bench.idle                 # settles 45 s, then measures 30 s

Starts the stack on free ports in a state directory of its own, waits for every process,
lets it settle, and reads each process's CPU time from /proc over the measuring window.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import cpu_seconds
from grantflow.stack.infrastructure import free_port

PROCESSES = (
    "tansu",
    "temporal",
    "intake",
    "review",
    "disbursement",
    "reporting",
    "workflows",
    "finance-sim",
)


def running_pids(run_dir: Path) -> dict[str, int]:
    pids: dict[str, int] = {}
    for name in PROCESSES:
        with_pid = run_dir / f"{name}.pid"
        if with_pid.exists() and with_pid.read_text().strip():
            pids[name] = int(with_pid.read_text())
    return pids


def measure(settle: float, window: float) -> None:
    state = Path(tempfile.mkdtemp(prefix="grantflow-idle-"))
    port_base = free_port() // 10 * 10
    command = [
        sys.executable,
        "-m",
        "grantflow",
        "up",
        "--kafka-port",
        str(free_port()),
        "--temporal-port",
        str(free_port()),
        "--temporal-ui-port",
        str(free_port()),
        "--http-port-base",
        str(port_base),
    ]
    log = (state / "up.log").open("wb")
    stack = subprocess.Popen(
        command,
        env={**os.environ, "GRANTFLOW_STATE_DIR": str(state)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        give_up_at = time.monotonic() + 120
        while len(running_pids(state / "run")) < len(PROCESSES):
            if stack.poll() is not None or time.monotonic() > give_up_at:
                raise SystemExit(f"the stack did not start; see {state / 'up.log'}")
            time.sleep(1)
        print(f"stack up; settling {settle:.0f} s, then measuring {window:.0f} s", flush=True)
        time.sleep(settle)
        pids = running_pids(state / "run")
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - started
        shares = {name: (cpu_seconds(pid) - before[name]) / elapsed for name, pid in pids.items()}
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
        log.close()
    for name in PROCESSES:
        print(f"{name:14} {shares[name] * 100:5.1f}% of one core")
    print(f"{'the idle stack':14} {sum(shares.values()) * 100:5.1f}% of one core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=45.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    arguments = parser.parse_args()
    measure(arguments.settle, arguments.window)


if __name__ == "__main__":
    main()
