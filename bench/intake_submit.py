"""Submissions per second and latency of the intake service on PostgreSQL.

    python -m bench.intake_submit                      # starts Tansu, a fresh database, intake
    python -m bench.intake_submit --processes 2        # two intake processes, one database
    python -m bench.intake_submit --url http://127.0.0.1:18001   # against a running service

Member cities and their drafts are made first (not timed); then N concurrent clients submit
them, paced at ``--rate`` per second (open loop: a late answer does not slow the senders),
and again as fast as the clients can (closed loop). Each submission carries an
Idempotency-Key and writes the snapshot, the outbox event and the mail in one transaction.
With several processes (``--processes``, or ``--url`` given more than once) the clients are
dealt round the processes as a load balancer would, and the CPU is the sum over them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import cpu_seconds, create_database, drop_database, percentile
from grantflow.stack.infrastructure import Tansu, free_port, terminate
from services.intake.domain import DRAFT_EXAMPLE
from shared.auth import Role, mint_token
from shared.contracts.topics import broker_topic_names
from shared.messaging.topics_admin import ensure_topics
from shared.migrations import upgrade
from shared.settings import CommonSettings


def usd(dollars: int) -> dict[str, Any]:
    return {"amount_minor": dollars * 100, "currency": "USD"}


def _partner(name: str, country: str) -> dict[str, str]:
    return {**DRAFT_EXAMPLE["partner"], "name": name, "country": country}


# One draft per program that passes every check: a member may hold one open application
# per program, so each member submits up to five.
DRAFTS: dict[str, dict[str, Any]] = {
    "AUPAP": {},
    "YAP-TNA": {  # tri-lateral: the program requires a partner in Canada and in Mexico
        "focus_area": "youth_and_education",
        "partner": _partner("Cuernavaca", "MX"),
        "other_partners": [_partner("Guelph", "CA") | {"contact_email": "twin@guelph.example.org"}],
        "delegation": {"adults": 2, "youth": 10},
    },
    "LEADING-ASIA": {
        "focus_area": "business_and_trade",
        "partner": _partner("Kunming", "CN"),
        "matching_cash": usd(4_524),
        "matching_in_kind": usd(0),
        "requested": usd(10_556),
    },
    "SINO-AFRICAN": {  # a partner in China and one in Africa
        "partner": _partner("Kunming", "CN"),
        "other_partners": [
            _partner("Nairobi", "KE") | {"contact_email": "twin@nairobi.example.org"}
        ],
        "matching_cash": usd(4_524),
        "matching_in_kind": usd(0),
        "requested": usd(10_556),
    },
    "CITIZEN": {
        "matching_cash": usd(6_540),
        "matching_in_kind": usd(1_000),
        "requested": usd(7_540),
    },
}


def host_speed() -> float:
    """Milliseconds of CPU for a fixed pure-Python loop: how fast this host is right now.

    The shared machines here change speed from hour to hour (the same submission cost
    5.5 ms of CPU at one time and 9.4 ms an hour later), so figures from different runs
    compare only alongside this reference.
    """
    started = time.process_time()
    total = 0
    for number in range(3_000_000):
        total += number % 7
    return (time.process_time() - started) * 1000


@dataclass
class Stack:
    urls: list[str]
    pids: list[int]


def service_cpu(pids: list[int]) -> float | None:
    """CPU of the service processes, to price a submission; None when they run elsewhere."""
    return cpu_seconds(*pids) if pids else None


@contextlib.contextmanager
def local_stack(processes: int) -> Iterator[Stack]:
    """Tansu, a fresh PostgreSQL database and ``processes`` replicas of ``grantflow serve
    intake``, each on its own port (replicas share the database; one relays the outbox)."""
    tansu = Tansu(port=free_port())
    tansu.start()
    database_url = asyncio.run(create_database())
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    state = tempfile.mkdtemp(prefix="grantflow-bench-")
    running: list[subprocess.Popen[bytes]] = []
    try:
        upgrade("intake", database_url)
        asyncio.run(ensure_topics(tansu.bootstrap, broker_topic_names(prefix)))
        urls = []
        for replica in range(processes):
            port = free_port()
            env = {
                **os.environ,
                "GRANTFLOW_DATABASE_URL": database_url,
                "GRANTFLOW_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
                "GRANTFLOW_TOPIC_PREFIX": prefix,
                "GRANTFLOW_STATE_DIR": state,
                "GRANTFLOW_LOG_LEVEL": "WARNING",
                "GRANTFLOW_INTAKE_HTTP_PORT": str(port),
            }
            running.append(
                subprocess.Popen(
                    [sys.executable, "-m", "grantflow", "serve", "intake"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=open(Path(state) / f"intake-{replica}.log", "wb"),  # noqa: SIM115
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            _wait_ready(url)
        yield Stack(urls=urls, pids=[process.pid for process in running])
    finally:
        for process in running:
            terminate(process, grace=5)
        tansu.stop()
        asyncio.run(drop_database(database_url))


def _wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"intake at {url} not ready after {timeout}s")


@dataclass(frozen=True)
class Job:
    application_id: str
    headers: dict[str, str]


async def prepare(client: httpx.AsyncClient, settings: CommonSettings, count: int) -> list[Job]:
    """Members and drafts for ``count`` submissions (not timed)."""
    officer = {"Authorization": f"Bearer {mint_token(settings, role=Role.PROGRAM_OFFICER)}"}
    run = uuid.uuid4().hex[:6]
    members = [f"bench-{run}-{n}" for n in range((count + len(DRAFTS) - 1) // len(DRAFTS))]
    semaphore = asyncio.Semaphore(16)

    async def member(member_id: str) -> list[Job]:
        async with semaphore:
            created = await client.post(
                "/v1/members",
                json={
                    "member_id": member_id,
                    "name": f"Bench City {member_id}",
                    "state": "CO",
                    "country": "US",
                    "contacts": [{"name": "Bench", "email": f"{member_id}@bench.example.org"}],
                },
                headers=officer,
            )
            created.raise_for_status()
            token = mint_token(settings, role=Role.APPLICANT, member_id=member_id)
            headers = {"Authorization": f"Bearer {token}"}
            jobs = []
            for code, changes in DRAFTS.items():
                body = {**DRAFT_EXAMPLE, "program_code": code, **changes}
                response = await client.post("/v1/applications", json=body, headers=headers)
                response.raise_for_status()
                jobs.append(Job(response.json()["application_id"], headers))
            return jobs

    batches = await asyncio.gather(*(member(m) for m in members))
    return [job for batch in batches for job in batch][:count]


async def submit(client: httpx.AsyncClient, job: Job) -> float:
    headers = {**job.headers, "Idempotency-Key": f"bench-{job.application_id}"}
    started = time.perf_counter()
    response = await client.post(
        f"/v1/applications/{job.application_id}/submit", json={"draft_version": 1}, headers=headers
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"submit answered {response.status_code}: {response.text[:300]}")
    return elapsed


async def paced(
    pool: list[httpx.AsyncClient], jobs: list[Job], clients: int, rate: float, pids: list[int]
) -> None:
    """Open loop: job i is due at i/rate; up to ``clients`` requests in flight."""
    queue: asyncio.Queue[tuple[float, Job]] = asyncio.Queue()
    start = time.perf_counter() + 0.2
    for index, job in enumerate(jobs):
        queue.put_nowait((start + index / rate, job))
    service: list[float] = []
    late: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            due, job = queue.get_nowait()
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            service.append(await submit(client, job))
            late.append(time.perf_counter() - due)  # includes waiting for a free client

    cpu = service_cpu(pids)
    await asyncio.gather(*(worker(pool[n % len(pool)]) for n in range(clients)))
    elapsed = time.perf_counter() - start
    report(f"paced at {rate:g}/s", len(jobs), elapsed, service, late, cpu, pids)


async def flat_out(
    pool: list[httpx.AsyncClient], jobs: list[Job], clients: int, pids: list[int]
) -> None:
    """Closed loop: each client submits its next job as soon as the last one is answered."""
    queue: asyncio.Queue[Job] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    service: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            service.append(await submit(client, queue.get_nowait()))

    start, cpu = time.perf_counter(), service_cpu(pids)
    await asyncio.gather(*(worker(pool[n % len(pool)]) for n in range(clients)))
    report("as fast as possible", len(jobs), time.perf_counter() - start, service, None, cpu, pids)


def report(
    label: str,
    count: int,
    elapsed: float,
    service: list[float],
    late: list[float] | None,
    cpu_before: float | None,
    pids: list[int],
) -> None:
    line = (
        f"{label:22} {count} submissions in {elapsed:.1f}s = {count / elapsed:,.0f}/s; "
        f"latency p50 {percentile(service, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(service, 0.99) * 1000:.1f} ms, max {max(service) * 1000:.1f} ms"
    )
    if late is not None:
        line += f"; from the scheduled time p99 {percentile(late, 0.99) * 1000:.1f} ms"
    cpu_after = service_cpu(pids)
    if cpu_before is not None and cpu_after is not None:
        line += f"; service CPU {(cpu_after - cpu_before) / count * 1000:.1f} ms per submission"
    print(line, flush=True)


async def run(
    urls: list[str], submissions: int, clients: int, rate: float, pids: list[int]
) -> None:
    settings = CommonSettings()
    per_process = max(1, clients // len(urls))
    limits = httpx.Limits(max_connections=per_process, max_keepalive_connections=per_process)
    async with contextlib.AsyncExitStack() as opened:
        pool = [
            await opened.enter_async_context(
                httpx.AsyncClient(base_url=url, limits=limits, timeout=30)
            )
            for url in urls
        ]
        jobs = await prepare(pool[0], settings, submissions * 2)
        print(
            f"intake at {', '.join(urls)}: {clients} concurrent clients; "
            f"host speed reference {host_speed():.0f} ms (lower is faster)",
            flush=True,
        )
        await asyncio.sleep(2)  # let the mail and outbox relays catch up with the set-up
        await paced(pool, jobs[:submissions], clients, rate, pids)
        await asyncio.sleep(2)
        await flat_out(pool, jobs[submissions:], clients, pids)
        officer = {"Authorization": f"Bearer {mint_token(settings, role=Role.PROGRAM_OFFICER)}"}
        relayed = 0
        for client in pool:  # each replica counts what it relayed itself
            metrics = (await client.get("/metrics", headers=officer)).text
            relayed += sum(
                int(float(line.split()[-1]))
                for line in metrics.splitlines()
                if line.startswith("outbox_published_total")
            )
        print(f"events relayed to Kafka so far: {relayed}", flush=True)
        print(f"host speed reference at the end {host_speed():.0f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", action="append", help="a running intake service, once per replica (default: start)"
    )
    parser.add_argument("--processes", type=int, default=1, help="intake processes to start")
    parser.add_argument("--submissions", type=int, default=1500, help="per phase")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100.0, help="paced submissions per second")
    args = parser.parse_args()
    if args.url:
        asyncio.run(run(args.url, args.submissions, args.clients, args.rate, []))
        return
    with local_stack(args.processes) as stack:
        asyncio.run(run(stack.urls, args.submissions, args.clients, args.rate, stack.pids))


if __name__ == "__main__":
    main()
