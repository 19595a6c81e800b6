"""The real stack under faults: ``grantflow up`` on PostgreSQL, and the faults themselves.

- ``FaultStack`` runs ``grantflow up`` (Tansu, the Temporal dev server, the four services,
  the worker and the finance simulator) on a fresh PostgreSQL database reached through a
  proxy, with a catalog whose waits are seconds, and can kill -9 any of its processes
  (the supervisor starts them again), stop it with Ctrl-C and start it again.
- ``postgres_proxy`` stands between the stack and PostgreSQL and can refuse connections.
- ``Duplicator`` delivers every message twice; ``send_garbage`` publishes malformed ones.
- ``check_end_state`` is what a program officer would verify after a cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from grantflow.driver import Endpoints, Journey, Outcome, People
from shared.auth import Role, mint_token
from shared.contracts.envelope import configure_event_ids
from shared.contracts.topics import ALL_TOPICS
from shared.settings import CommonSettings
from tests.e2e.test_up import Output, Ports, clean_env
from tests.support.databases import postgres_admin
from tests.support.processes import TcpProxy
from workflows.funding.models import workflow_id
from workflows.funding.workflow import ExchangeFundingWorkflow

DEMO_CATALOG = Path(__file__).resolve().parents[2] / "services/intake/catalog/programs-demo.json"
POSTGRES = ("127.0.0.1", 5432)
READY_TIMEOUT = 120.0
COPY_HEADER = "x-grantflow-copy"

# What every journey of the suite ends with, as it does without any fault: awarded
# 11,000 USD, a 70% advance of 7,700, then 10,000 spent, so the final tranche is cut from
# 3,300 to 2,300 and nothing comes back.
AWARDED = 1_100_000
TRANCHES = [(1, 770_000), (2, 230_000)]
SPENT = 1_000_000


def fast_catalog(directory: Path) -> Path:
    catalog = json.loads(DEMO_CATALOG.read_text())
    catalog["defaults"].update(
        {
            "demo_exchange_ends_after": "PT2S",
            # Deadlines are not the faults under test: a slow moment must not trip them.
            "partner_confirmation_period": "PT900S",
            "review_period": "PT900S",
            "report_due_after": "PT300S",
            "command_resend_after": "PT5S",
            "payment_settlement_period": "PT20S",
        }
    )
    path = directory / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def postgres_proxy() -> TcpProxy:
    """A TCP proxy to PostgreSQL that can refuse connections for a while."""
    return TcpProxy(lambda: [POSTGRES])


@dataclass
class FaultStack:
    directory: Path
    ports: Ports = field(default_factory=Ports)
    proxy: TcpProxy = field(default_factory=postgres_proxy)
    database: str = field(default_factory=lambda: f"grantflow_faults_{uuid.uuid4().hex[:10]}")
    process: subprocess.Popen[str] | None = None
    output: Output | None = None
    starts: int = 0

    @property
    def state_dir(self) -> Path:
        return self.directory / ".grantflow"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    @property
    def temporal(self) -> str:
        return f"127.0.0.1:{self.ports.temporal}"

    def endpoints(self) -> Endpoints:
        return Endpoints.local(self.state_dir, self.ports.http_base)

    def env(self) -> dict[str, str]:
        return {
            **clean_env(),
            "GRANTFLOW_INTAKE_CATALOG": str(fast_catalog(self.directory)),
            "GRANTFLOW_DATABASE_URL": (
                f"postgresql+asyncpg://postgres@127.0.0.1:{self.proxy.port}/{self.database}"
            ),
            "GRANTFLOW_LOG_LEVEL": "INFO",
        }

    async def create(self) -> None:
        await postgres_admin(f'CREATE DATABASE "{self.database}"')
        self.proxy.start()

    def up(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "grantflow", "up", *self.ports.args()],
            cwd=self.directory,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self.starts += 1
        self.output = Output(self.process.stdout, marker="ready in")
        if not self.output.seen.wait(READY_TIMEOUT):
            raise AssertionError("the stack did not start:\n" + self.output.text()[-4000:])
        self.fund_programs()

    def fund_programs(self) -> None:
        """Budgets for many batches: a waitlist is not the fault under test."""
        officer = {"Authorization": f"Bearer {mint_token(CommonSettings(), role=Role.ADMIN)}"}
        url = self.endpoints().url("disbursement", "/v1/budgets/AUPAP/demo")
        answer = httpx.put(
            url,
            json={"amount": {"amount_minor": 10**13, "currency": "USD"}, "reason": "officer test"},
            headers=officer,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    def save_log(self) -> None:
        """Keep the stack's output next to the test's files, for whoever reads a failure."""
        if self.output is not None:
            (self.directory / f"up-{self.starts}.log").write_text(self.output.text())

    def interrupt(self) -> None:
        """Ctrl-C: the whole stack stops."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(30)
        if self.output is not None:
            self.output.join(2)
        self.save_log()

    def pid(self, name: str) -> int:
        return int((self.state_dir / "run" / f"{name}.pid").read_text().strip())

    def kill(self, name: str) -> int:
        """kill -9 one process of the stack; return its pid."""
        pid = self.pid(name)
        os.kill(pid, signal.SIGKILL)
        return pid

    async def wait_restarted(self, name: str, old_pid: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                if self.pid(name) != old_pid:
                    return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{name} was not started again: {self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.lines[-lines:]) if self.output else ""

    def log_has(self, text: str) -> bool:
        return self.output is not None and any(text in line for line in self.output.lines)

    async def destroy(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.interrupt()
        self.save_log()
        self.proxy.stop()
        if os.environ.get("GRANTFLOW_KEEP_FAULT_DATABASE"):
            print(f"kept the fault suite's database {self.database}")
            return
        with contextlib.suppress(Exception):
            await postgres_admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


# -- faults on the broker ------------------------------------------------------------------


def consumed_topics() -> list[str]:
    return [topic.name for topic in ALL_TOPICS]


class Duplicator:
    """Delivers every message on every topic a second time (what a retrying producer does)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.copied = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=False)
        consumer = AIOKafkaConsumer(
            *consumed_topics(),
            bootstrap_servers=self.bootstrap,
            group_id=f"fault-duplicator-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="latest",
            enable_auto_commit=True,
            fetch_max_wait_ms=20,
        )
        await producer.start()
        await consumer.start()
        try:
            async for record in consumer:
                headers = list(record.headers or ())
                if any(key == COPY_HEADER for key, _ in headers):
                    continue
                await producer.send_and_wait(
                    record.topic,
                    record.value,
                    key=record.key,
                    headers=[*headers, (COPY_HEADER, b"1")],
                )
                self.copied += 1
        finally:
            await consumer.stop()
            await producer.stop()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


GARBAGE: list[bytes] = [
    b"not json at all",
    b'{"event_id": "not-a-uuid", "payload": {}}',
    json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "Nonsense",
            "schema_version": 1,
            "occurred_at": "2026-11-30T00:00:00Z",
            "producer": "nobody",
            "application_id": "garbage",
            "correlation_id": "garbage",
            "payload": {"unexpected": True},
        }
    ).encode(),
]


async def send_garbage(bootstrap: str) -> int:
    """Malformed messages on every topic; how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    sent = 0
    try:
        for topic in consumed_topics():
            for body in GARBAGE:
                await producer.send_and_wait(topic, body, key=b"garbage")
                sent += 1
    finally:
        await producer.stop()
    return sent


async def dead_letter_counts(database_url: str) -> dict[str, int]:
    """Dead letters per topic across every process's table."""
    connection = await asyncpg.connect(database_url)
    try:
        counts: dict[str, int] = {}
        for service in ("intake", "review", "disbursement", "reporting", "workflows"):
            rows = await connection.fetch(
                f"SELECT topic, count(*) AS n FROM {service}_dead_letters GROUP BY topic"
            )
            for row in rows:
                counts[row["topic"]] = counts.get(row["topic"], 0) + int(row["n"])
        return counts
    finally:
        await connection.close()


# -- what a program officer checks afterwards ------------------------------------------------


@dataclass
class Batch:
    """Applications driven at once while a fault happens."""

    name: str
    size: int = 10

    def journeys(self) -> list[Journey]:
        return [
            Journey(f"{self.name}-{index}", f"City {self.name} {index}", f"{self.name} #{index}",
                    spent_minor=SPENT)
            for index in range(self.size)
        ]  # fmt: skip


async def start_batch(people: People, batch: Batch) -> list[asyncio.Task[Outcome]]:
    journeys = batch.journeys()
    await asyncio.gather(*(people.ensure_member(j.member_id, j.city) for j in journeys))
    return [asyncio.create_task(people.live(journey)) for journey in journeys]


async def finish(tasks: list[asyncio.Task[Outcome]]) -> list[Outcome]:
    return list(await asyncio.gather(*tasks))


async def check_end_state(
    people: People,
    outcomes: list[Outcome],
    temporal: str,
    namespace: str = "default",
    event_id_secret: str | None = None,
) -> None:
    """Every application closed as without the fault; each tranche paid once; the ledger
    balanced; the analytics equal to the ledger; every lifecycle's history replays
    (``temporal`` and ``namespace``: where the stack's lifecycles run; ``event_id_secret``:
    the deployment's, from which the workflow derives its command ids)."""
    failed = [(o.journey.title, o.stage, o.error) for o in outcomes if o.stage != "closed"]
    assert not failed, failed
    await check_histories_replay(
        temporal, namespace, event_id_secret, [str(o.application_id) for o in outcomes]
    )
    officer = people.officer()
    endpoints = people.endpoints
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        for outcome in outcomes:
            application_id = outcome.application_id
            history = (
                await http.get(
                    endpoints.url("disbursement", f"/v1/applications/{application_id}/payments"),
                    headers=officer,
                )
            ).json()
            assert history["awarded"]["amount_minor"] == AWARDED, history
            paid = [
                (p["tranche"], p["amount"]["amount_minor"])
                for p in history["payments"]
                if p["status"] == "settled"
            ]
            assert sorted(paid) == TRANCHES, history["payments"]
            assert len(history["payments"]) == len(TRANCHES), history["payments"]
            assert history["disbursed"]["amount_minor"] == SPENT, history
            assert history["refund_due"]["amount_minor"] == 0, history
            assert history["reserved"]["amount_minor"] == 0, history
            assert history["in_payment"]["amount_minor"] == 0, history
            # The read models follow the events a moment later: give them that moment.
            member = outcome.journey.member_id

            async def analytics_equal_the_ledger(member: str = member) -> list[Any] | None:
                rows = (
                    await http.get(
                        endpoints.url("reporting", "/v1/analytics/money"),
                        params={"group_by": "member", "member_id": member},
                        headers=officer,
                    )
                ).json()["rows"]
                money = [(row["paid_minor"], row["refunded_minor"]) for row in rows]
                return rows if money == [(SPENT, 0)] else None

            async def closed_for_the_applicant(
                member: str = member, application_id: str = application_id
            ) -> str | None:
                seen = await http.get(
                    endpoints.url("intake", f"/v1/applications/{application_id}"),
                    headers=people.applicant(member),
                )
                return "closed" if seen.json()["status"] == "closed" else None

            await people.until(
                f"analytics of {member} to equal the ledger", analytics_equal_the_ledger, 60
            )
            await people.until(f"{member} to see it closed", closed_for_the_applicant, 60)
        budgets = (
            await http.get(endpoints.url("disbursement", "/v1/budgets"), headers=officer)
        ).json()
        for budget in budgets:
            parts = ("available", "reserved", "in_payment", "disbursed", "refund_due")
            assert budget["budget"]["amount_minor"] == sum(
                budget[part]["amount_minor"] for part in parts
            ), budget
        findings = (
            await http.get(endpoints.url("disbursement", "/v1/reconciliation"), headers=officer)
        ).json()["findings"]
        wrong = [f for f in findings if f["kind"] not in ("duplicate",)]
        assert not wrong, wrong


def report_line(name: str, outcomes: list[Outcome], fault_at: float) -> str:
    closed = sum(1 for o in outcomes if o.stage == "closed")
    finished = [o.finished for o in outcomes if o.finished is not None]
    heal = max(finished) - fault_at if finished else float("nan")
    return (
        f"{name}: {len(outcomes)} in flight, {closed} closed, "
        f"the last closed {heal:.1f} s after the fault"
    )


async def check_histories_replay(
    temporal: str, namespace: str, event_id_secret: str | None, application_ids: list[str]
) -> None:
    """The histories the lifecycles wrote under the fault replay against the workflow code:
    a history that does not would fail the lifecycle at its next replay, and every query
    of it after it closed."""
    client = await Client.connect(
        temporal, namespace=namespace, data_converter=pydantic_data_converter
    )
    replayer = Replayer(workflows=[ExchangeFundingWorkflow], data_converter=pydantic_data_converter)
    broken = {}
    configure_event_ids(event_id_secret)  # the workflow derives command ids with it
    try:
        for application_id in application_ids:
            handle = client.get_workflow_handle(workflow_id(application_id))
            result = await replayer.replay_workflow(
                await handle.fetch_history(), raise_on_replay_failure=False
            )
            if result.replay_failure is not None:
                broken[application_id] = str(result.replay_failure)[:300]
    finally:
        configure_event_ids(None)
    assert not broken, broken
