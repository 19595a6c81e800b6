"""The production topology on one machine: separate processes as the manifests run them.

- an external broker (Tansu) and a Temporal server (the dev server, standing for the
  cluster), both started here, and a fresh PostgreSQL database;
- ``grantflow setup`` against them, as the setup Job runs it;
- ``grantflow serve <service>`` and ``grantflow worker``, two replicas each on ports of
  their own, in production mode, behind one round-robin address per kind (what a
  Kubernetes Service is to its pods);
- ``grantflow finance-sim`` as the finance system.

Any replica can be killed with SIGKILL and started again, as a Deployment replaces a pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from grantflow.driver import Endpoints
from services.review.demo import DEMO_REVIEWERS
from tests.support.processes import Tansu, TcpProxy, TemporalDevServer, free_port, round_robin

KINDS = ("intake", "review", "disbursement", "reporting", "workflows")
REPLICAS = ("a", "b")
POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
READY_TIMEOUT = 180.0
SECRET = "production-topology-test-secret-0123456789"
NAMESPACE = "grantflow"  # not the default: ``grantflow setup`` creates it
EVENT_ID_SECRET = SECRET + "-event-ids"  # the workflow derives its command ids with it


@dataclass
class Replica:
    kind: str
    name: str
    port: int
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    started: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Topology:
    directory: Path
    catalog: Path
    database: str = field(default_factory=lambda: f"grantflow_prod_{uuid.uuid4().hex[:10]}")
    tansu: Tansu = field(default_factory=lambda: Tansu(port=free_port()))
    temporal: TemporalDevServer | None = None
    replicas: dict[str, Replica] = field(default_factory=dict)
    balancers: dict[str, TcpProxy] = field(default_factory=dict)
    finance: Replica | None = None

    @property
    def state_dir(self) -> Path:
        # Shared by the replicas, as a volume would be: intake's mail lands here.
        return self.directory / "state"

    @property
    def database_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.database}"

    def env(self) -> dict[str, str]:
        """The environment of every process, as the ConfigMap and Secret give it."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("GRANTFLOW_")}
        assert self.temporal is not None
        return {
            **base,
            "GRANTFLOW_ENVIRONMENT": "production",
            "GRANTFLOW_STATE_DIR": str(self.state_dir),
            "GRANTFLOW_DATABASE_URL": self.database_url,
            "GRANTFLOW_DATABASE_POOL_SIZE": "3",
            "GRANTFLOW_DATABASE_MAX_OVERFLOW": "3",
            "GRANTFLOW_KAFKA_BOOTSTRAP_SERVERS": self.tansu.bootstrap,
            "GRANTFLOW_KAFKA_TOPIC_PARTITIONS": "4",
            "GRANTFLOW_TEMPORAL_ADDRESS": self.temporal.address,
            "GRANTFLOW_TEMPORAL_NAMESPACE": NAMESPACE,
            "GRANTFLOW_JWT_SECRET": SECRET,
            "GRANTFLOW_LINK_SECRET": SECRET + "-links",
            "GRANTFLOW_EVENT_ID_SECRET": EVENT_ID_SECRET,
            "GRANTFLOW_DISBURSEMENT_FINANCE_WEBHOOK_SECRET": SECRET + "-finance",
            "GRANTFLOW_INTAKE_PUBLIC_URL": self.balancers["intake"].url,
            "GRANTFLOW_INTAKE_CATALOG": str(self.catalog),
            "GRANTFLOW_DISBURSEMENT_SETTLEMENT_DEADLINE_SECONDS": "30",
            "GRANTFLOW_DISBURSEMENT_RETRY_DELAY_SECONDS": "5",
            "GRANTFLOW_DISBURSEMENT_DEADLINE_SCAN_INTERVAL_SECONDS": "1",
            "GRANTFLOW_LOG_LEVEL": "WARNING",
            "GRANTFLOW_LOG_FORMAT": "text",
            "PYTHONUNBUFFERED": "1",
        }

    # -- bringing it up ------------------------------------------------------------------

    async def create(self) -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await connection.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await connection.close()
        self.tansu.start()
        self.temporal = TemporalDevServer(
            port=free_port(), ui_port=free_port(), db_file=self.directory / "temporal.db"
        )
        self.temporal.start({})  # a bare server: setup registers what the workflow needs
        for kind in KINDS:
            for replica in REPLICAS:
                port = free_port()
                argv = ["worker"] if kind == "workflows" else ["serve", kind]
                name = f"{kind}-{replica}"
                self.replicas[name] = Replica(kind, name, port, argv, self.log_of(name))
        for kind in KINDS:
            ports = [r.port for r in self.replicas.values() if r.kind == kind]
            self.balancers[kind] = TcpProxy(round_robin(ports))
            self.balancers[kind].start()

    def log_of(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def setup(self) -> str:
        """``grantflow setup``, as the Job runs it; what it said."""
        result = subprocess.run(
            [sys.executable, "-m", "grantflow", "setup", "--wait", "60"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def start(self, replica: Replica) -> None:
        env = self.env()
        env[f"GRANTFLOW_{replica.kind.upper()}_HTTP_PORT"] = str(replica.port)
        with replica.log.open("ab") as log:
            replica.process = subprocess.Popen(
                [sys.executable, "-m", "grantflow", *replica.argv],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        replica.started += 1

    def start_all(self) -> None:
        for replica in self.replicas.values():
            self.start(replica)
        self.finance = Replica(
            "finance",
            "finance-sim",
            0,
            ["finance-sim", "--delay", "1", "--seed", "13"],
            self.log_of("finance-sim"),
        )
        self.start(self.finance)

    async def wait_ready(self, replicas: list[Replica] | None = None) -> None:
        waiting = list(replicas or self.replicas.values())
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=3.0, trust_env=False) as http:
            while waiting:
                for replica in list(waiting):
                    assert replica.process is not None
                    if replica.process.poll() is not None:
                        raise AssertionError(f"{replica.name} exited:\n{self.tail(replica)}")
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(f"{replica.url}/readyz")).status_code == 200:
                            waiting.remove(replica)
                if time.monotonic() > deadline:
                    names = ", ".join(r.name for r in waiting)
                    tails = "\n".join(self.tail(r) for r in waiting)
                    raise AssertionError(f"not ready: {names}\n{tails}")
                await asyncio.sleep(0.5)

    def endpoints(self) -> Endpoints:
        return Endpoints(
            urls={kind: balancer.url for kind, balancer in self.balancers.items()},
            mail_dir=self.state_dir / "mail",
        )

    async def register_reviewers(self, officer: dict[str, str]) -> None:
        """Production has no demo reviewers: an officer registers them."""
        async with httpx.AsyncClient(timeout=15.0, trust_env=False) as http:
            for reviewer in DEMO_REVIEWERS:
                body = {
                    "id": reviewer["id"],
                    "name": reviewer["name"],
                    "email": reviewer["email"],
                    "home_city": reviewer["home_city"],
                    "home_country": reviewer["home_country"],
                    "expertise": {
                        key: reviewer[key]
                        for key in ("programs", "focus_areas", "regions", "languages")
                    },
                    "capacity": reviewer["capacity"],
                }
                answer = await http.post(
                    f"{self.balancers['review'].url}/v1/reviewers", json=body, headers=officer
                )
                assert answer.status_code in (201, 409), answer.text

    # -- breaking it ---------------------------------------------------------------------

    def kill(self, name: str) -> int:
        """kill -9 one replica (its whole process group); its pid."""
        replica = self.replicas[name]
        assert replica.process is not None and replica.process.poll() is None, name
        pid = replica.process.pid
        os.killpg(pid, signal.SIGKILL)
        replica.process.wait(10)
        return pid

    # -- reading and tearing down ----------------------------------------------------------

    def tail(self, replica: Replica, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            text = replica.log.read_text(errors="replace").splitlines()[-lines:]
            return f"--- {replica.name} ---\n" + "\n".join(text)
        return f"--- {replica.name}: no log ---"

    def every(self) -> Iterator[Replica]:
        yield from self.replicas.values()
        if self.finance is not None:
            yield self.finance

    async def destroy(self) -> None:
        for replica in self.every():
            if replica.process is not None and replica.process.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(replica.process.pid, signal.SIGTERM)
        for replica in self.every():
            if replica.process is not None:
                try:
                    replica.process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(replica.process.pid, signal.SIGKILL)
                    replica.process.wait(5)
        for balancer in self.balancers.values():
            balancer.stop()
        if self.temporal is not None:
            self.temporal.stop()
        self.tansu.stop()
        with contextlib.suppress(Exception):
            connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
            try:
                await connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            finally:
                await connection.close()
