"""What ``grantflow up`` runs and where: the processes, their ports, and whether they are free."""

from __future__ import annotations

import errno
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from grantflow.services import SETTINGS_BY_SERVICE
from shared.settings import CommonSettings, ServiceSettings

DEFAULT_KAFKA_PORT: Final = 19092
DEFAULT_TEMPORAL_PORT: Final = 17233
DEFAULT_TEMPORAL_UI_PORT: Final = 18233
TEMPORAL_UI_PORT_ENV: Final = "GRANTFLOW_TEMPORAL_UI_PORT"

# Order matters: --http-port-base puts them on BASE+1 .. BASE+5 in this order.
SERVICE_NAMES: Final = ("intake", "review", "disbursement", "reporting", "workflows")
WORKER: Final = "workflows"
TANSU: Final = "tansu"
TEMPORAL: Final = "temporal"
FINANCE_SIM: Final = "finance-sim"
# Every process ``grantflow up`` may start, by the name of its pid file and log prefix.
PROCESS_NAMES: Final = (TANSU, TEMPORAL, *SERVICE_NAMES, FINANCE_SIM)

# Seconds the finance simulator takes to settle an instruction, unless --finance-delay.
FINANCE_DELAY: Final = 2.0


def finance_sim_argv(delay: float) -> list[str]:
    return [sys.executable, "-m", "grantflow", "finance-sim", "--delay", str(delay)]


# --demo: the catalog whose periods are seconds, so a whole cycle runs in minutes.
DEMO_CATALOG_ENV: Final = "GRANTFLOW_INTAKE_CATALOG"
PARTITIONS_ENV: Final = "GRANTFLOW_KAFKA_TOPIC_PARTITIONS"
REPORTING_URL_ENV: Final = "GRANTFLOW_INTAKE_REPORTING_URL"
EMBEDDED_PARTITIONS: Final = 1
# The embedded stack is a demo: deadlines in seconds rather than hours, unless set.
EMBEDDED_DEMO_ENV: Final = {
    "GRANTFLOW_DISBURSEMENT_SETTLEMENT_DEADLINE_SECONDS": "30",
    "GRANTFLOW_DISBURSEMENT_RETRY_DELAY_SECONDS": "5",
    "GRANTFLOW_DISBURSEMENT_DEADLINE_SCAN_INTERVAL_SECONDS": "1",
    # One replica of each process consumes every partition anyway, and Tansu's cost per
    # fetch grows with the partitions a fetch names: with one, the idle stack went from
    # 1.4 to 0.74 of a core (Tansu from 0.90 to 0.36), with no hop slower.
    PARTITIONS_ENV: str(EMBEDDED_PARTITIONS),
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
        return f"http://{url_host(self.host)}:{self.port}"

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
    finance_delay: float = FINANCE_DELAY

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
        finance_delay: float = FINANCE_DELAY,
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
                finance_delay=finance_delay,
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
            finance_delay=finance_delay,
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

    @property
    def temporal_db_file(self) -> Path:
        """Temporal's state: workflows survive a restart of the server and of the stack."""
        return self.state_dir / "temporal.db"

    @property
    def run_dir(self) -> Path:
        """Where each running process's pid is kept, as ``<name>.pid``."""
        return self.state_dir / "run"

    def stack_settings(self) -> CommonSettings:
        """The settings with this stack's addresses: what its processes will see."""
        update: dict[str, object] = {
            "kafka_bootstrap_servers": self.kafka_bootstrap_servers,
            "temporal_address": self.temporal_address,
            "state_dir": self.state_dir,
        }
        if not self.external and PARTITIONS_ENV not in os.environ:
            update["kafka_topic_partitions"] = EMBEDDED_PARTITIONS
        return self.settings.model_copy(update=update)

    def child_env(self) -> dict[str, str]:
        """The environment of our processes: the stack's addresses on top of ours."""
        env = dict(os.environ)
        env.update(
            {
                "GRANTFLOW_STATE_DIR": str(self.state_dir),
                "GRANTFLOW_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
                "GRANTFLOW_TEMPORAL_ADDRESS": self.temporal_address,
                # Lines should reach the console as they are written, not when a buffer fills.
                "PYTHONUNBUFFERED": "1",
            }
        )
        for spec in self.services:
            env[spec.port_env] = str(spec.port)
            if spec.name == "reporting":  # the portal's report form calls reporting's API
                env[REPORTING_URL_ENV] = spec.url
        if not self.external:
            for name, value in EMBEDDED_DEMO_ENV.items():
                env.setdefault(name, value)
        if self.demo:
            env.setdefault(DEMO_CATALOG_ENV, "demo")
        return env


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


def host_port(address: str) -> tuple[str, int]:
    """The first ``host:port`` of an address list."""
    first = address.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise StackStartError(f"cannot read host:port from {address!r}")
    return host.strip("[]"), int(port)


def url_host(host: str) -> str:
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
