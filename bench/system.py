"""Whole lifecycles through the real stack, driven as its people would drive it.

``grantflow up`` (Tansu, the Temporal dev server, the four services, the worker and the
finance simulator settling at once) on a fresh PostgreSQL database, under the demo catalog
with its waits set near zero: the exchange ends a second after the advance, and every
deadline is far enough away never to fire. N applicants draft and submit through intake's
API, their partners confirm through the mailed links, reviewers score through review's API,
the applicants report through reporting's API and a reviewer approves the report
(``grantflow/driver.py``), at most ``--concurrency`` applications at a time.

Prints lifecycles per second, p50/p99 from the draft to close-out, the mean time spent in
each stage (from the workflow's own history), the CPU seconds each process used per
lifecycle, and, in the same run after the stack has stopped, the ceiling: bare Temporal
workflows with the same number of activities and signals, no Kafka, no database.

    python -m bench.system --applications 200
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import cpu_seconds, create_database, drop_database, percentile
from bench.lifecycle import bare_lifecycles
from grantflow.driver import Endpoints, Journey, Outcome, People
from grantflow.stack.infrastructure import TemporalDevServer, free_port
from grantflow.stack.options import PROCESS_NAMES
from shared.auth import Role, mint_token
from shared.settings import CommonSettings
from workflows.funding.search_attributes import SEARCH_ATTRIBUTES

DEMO_CATALOG = Path(__file__).resolve().parents[1] / "services/intake/catalog/programs-demo.json"
READY_TIMEOUT = 180.0
# Far beyond any lifecycle of the run: a deadline that fires would measure itself.
NEVER = "PT3600S"


def near_zero_catalog(directory: Path) -> Path:
    catalog = json.loads(DEMO_CATALOG.read_text())
    catalog["defaults"].update(
        {
            "demo_exchange_ends_after": "PT1S",
            "partner_confirmation_period": NEVER,
            "review_period": NEVER,
            "revision_period": NEVER,
            "report_due_after": NEVER,
            "report_reminders_before": [],
            "report_reminders_after": [],
            "report_overdue_after": NEVER,
            "report_review_period": NEVER,
            "report_changes_period": NEVER,
            "payment_settlement_period": NEVER,
            "command_resend_after": "PT120S",
        }
    )
    path = directory / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def free_port_block(size: int) -> int:
    """A base port whose next ``size`` ports are free right now."""
    for _ in range(200):
        base = free_port()
        if base + size >= 65535:
            continue
        try:
            with socket.socket() as probe:
                for port in range(base + 1, base + size + 1):
                    with socket.socket() as other:
                        other.bind(("127.0.0.1", port))
                probe.bind(("127.0.0.1", base))
        except OSError:
            continue
        return base
    raise RuntimeError("no block of free ports")


class Stack:
    """``grantflow up`` in a folder of its own, on its own ports and database."""

    def __init__(self, directory: Path, database_url: str, catalog: Path) -> None:
        self.directory = directory
        base = free_port_block(8)
        self.http_base = base
        self.ports = ["--http-port-base", str(base), "--kafka-port", str(base + 6)]
        self.ports += ["--temporal-port", str(base + 7), "--temporal-ui-port", str(base + 8)]
        self.env = {
            **{key: value for key, value in os.environ.items() if not key.startswith("GRANTFLOW_")},
            "GRANTFLOW_INTAKE_CATALOG": str(catalog),
            "GRANTFLOW_DATABASE_URL": database_url,
            "GRANTFLOW_LOG_LEVEL": "WARNING",
        }
        self.log = directory / "stack.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints.local(self.directory / ".grantflow", self.http_base)

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "grantflow", "up", "--finance-delay", "0", *self.ports],
                cwd=self.directory,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while b"ready in" not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the stack did not start:\n" + self.log.read_text()[-4000:])
            time.sleep(0.5)

    def fund(self) -> None:
        """A budget no run exhausts: a waitlist is not what this measures."""
        admin = {"Authorization": f"Bearer {mint_token(CommonSettings(), role=Role.ADMIN)}"}
        answer = httpx.put(
            self.endpoints.url("disbursement", "/v1/budgets/AUPAP/demo"),
            json={
                "amount": {"amount_minor": 10**13, "currency": "USD"},
                "reason": "benchmark: a budget no run exhausts",
            },
            headers=admin,
            timeout=30,
        )
        answer.raise_for_status()

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each process ``grantflow up`` started, by name."""
        used: dict[str, float] = {}
        for name in PROCESS_NAMES:
            pid_file = self.directory / ".grantflow" / "run" / f"{name}.pid"
            try:
                used[name] = cpu_seconds(int(pid_file.read_text()))
            except (OSError, ValueError):
                continue
        return used

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()


async def drive(people: People, count: int, concurrency: int) -> list[Outcome]:
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(index: int) -> Outcome:
        nonlocal done
        journey = Journey(f"bench-{index}", f"Bench City {index}", f"Bench exchange #{index}")
        async with gate:
            await people.ensure_member(journey.member_id, journey.city)
            outcome = await people.live(journey)
        done += 1
        if done % max(1, count // 10) == 0 or done == count:
            print(f"  {done}/{count} lifecycles done", flush=True)
        return outcome

    return list(await asyncio.gather(*(one(index) for index in range(count))))


async def stage_seconds(people: People, outcomes: list[Outcome]) -> dict[str, float]:
    """Mean seconds per stage over the closed applications, from the workflow's history."""
    total: dict[str, float] = defaultdict(float)
    closed = [o.application_id for o in outcomes if o.stage == "closed" and o.application_id]
    for application_id in closed:
        answer = await people.http.get(
            people.endpoints.url("workflows", f"/v1/lifecycle/{application_id}"),
            headers=people.officer(),
        )
        history: list[dict[str, Any]] = answer.json()["history"]
        for entered, left in itertools.pairwise(history):
            spent = datetime.fromisoformat(left["at"]) - datetime.fromisoformat(entered["at"])
            total[entered["stage"]] += spent.total_seconds()
    return {stage: seconds / max(1, len(closed)) for stage, seconds in total.items()}


async def ceiling(count: int, directory: Path) -> float:
    """Bare lifecycles per second on a Temporal dev server of their own."""
    server = TemporalDevServer(
        port=free_port(), ui_port=free_port(), db_file=directory / "bare-temporal.db"
    )
    server.start(SEARCH_ATTRIBUTES)
    try:
        await asyncio.sleep(2)  # the dev server registers its namespace after listening
        return (await bare_lifecycles(server, count)).per_second
    finally:
        server.stop()


async def main(count: int, concurrency: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    for key in [key for key in os.environ if key.startswith("GRANTFLOW_")]:
        del os.environ[key]  # the bench mints tokens with the stack's own (default) settings
    database_url = await create_database()
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        stack = Stack(directory, database_url, near_zero_catalog(directory))
        people: People | None = None
        try:
            print(f"starting grantflow up (PostgreSQL, {count} applications) ...", flush=True)
            await asyncio.to_thread(stack.start)
            await asyncio.to_thread(stack.fund)
            people = People(stack.endpoints, step_timeout=600.0)
            cpu_before = stack.cpu()
            started = time.perf_counter()
            outcomes = await drive(people, count, concurrency)
            elapsed = time.perf_counter() - started
            cpu_after = stack.cpu()
            stages = await stage_seconds(people, outcomes)
        finally:
            if people is not None:
                await people.close()
            await asyncio.to_thread(stack.stop)
            await drop_database(database_url)
        bare_per_second = await ceiling(count, directory)
    report(outcomes, elapsed, stages, cpu_before, cpu_after, bare_per_second, concurrency)


def report(
    outcomes: list[Outcome],
    elapsed: float,
    stages: dict[str, float],
    cpu_before: dict[str, float],
    cpu_after: dict[str, float],
    bare_per_second: float,
    concurrency: int,
) -> None:
    closed = [o for o in outcomes if o.stage == "closed" and o.seconds is not None]
    latencies = [o.seconds for o in closed if o.seconds is not None]
    per_second = len(closed) / elapsed
    print(f"whole stack: {len(closed)}/{len(outcomes)} closed in {elapsed:.1f} s, at most")
    print(f"  {concurrency} at a time: {per_second:.2f} lifecycles/s")
    if latencies:
        print(
            f"  draft to close: p50 {percentile(latencies, 0.5):.1f} s, "
            f"p99 {percentile(latencies, 0.99):.1f} s"
        )
    for failed in [o for o in outcomes if o.stage != "closed"][:5]:
        print(f"  not closed: {failed.journey.title} in {failed.stage}: {failed.error}")
    print("  mean seconds per stage: " + ", ".join(f"{s} {t:.2f}" for s, t in stages.items()))
    print("  CPU seconds per lifecycle:")
    for name, after in cpu_after.items():
        used = (after - cpu_before.get(name, 0.0)) / max(1, len(closed))
        print(f"    {name:<13} {used:.3f}")
    print(f"ceiling (bare workflow, same activities and signals): {bare_per_second:.2f}/s")
    print(f"whole stack / ceiling: {per_second / bare_per_second:.0%}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--applications", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.applications, arguments.concurrency))
