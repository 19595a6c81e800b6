"""The intake service's settings, read from ``GRANTFLOW_INTAKE_*`` (and the common ones)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRANTFLOW_INTAKE_", extra="ignore")
    service_name: ClassVar[str] = "intake"
    http_port: int = 18001

    catalog: str = "default"
    """``default`` (programs-2027.json), ``demo`` (durations in seconds) or a file path."""

    public_url: str | None = None
    """Base URL of this service as partners reach it (the confirmation link)."""

    reporting_url: str = "http://127.0.0.1:18004"
    """Base URL of the reporting service's API as intake reaches it: the portal's report
    form saves and submits through it, as the applicant (``grantflow up`` sets it)."""

    seed_demo_data: bool | None = None
    """Add demo members and exchange rates at startup; default: outside production."""

    mail_poll_interval_ms: int = 1000

    cycle_check_interval_seconds: float = Field(default=3600.0, gt=0, le=86_400)
    """How often to look for program cycles that opened (their budgets open in the ledger)."""

    consumer_fetch_max_wait_ms: int | None = 100
    """Fetch wait of intake's consumer (None: the common ``kafka_fetch_max_wait_ms``).

    Nothing intake consumes needs millisecond latency (status read model, mail), and an
    idle consumer polls the broker once per wait: 10 ms costs a noticeable share of a core
    with no traffic at all.
    """

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    @property
    def seeds_demo_data(self) -> bool:
        if self.seed_demo_data is None:
            return self.environment != "production"
        return self.seed_demo_data
