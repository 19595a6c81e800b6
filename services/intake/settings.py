"""Intake's own options, read from ``GRANTFLOW_INTAKE_*`` next to ``IntakeSettings``.

They live here rather than in ``shared.settings`` because no other process needs them.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import ServiceSettings


class IntakeOptions(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRANTFLOW_INTAKE_", extra="ignore")

    catalog: str = "default"
    """``default`` (programs-2027.json), ``demo`` (durations in seconds) or a file path."""

    public_url: str | None = None
    """Base URL of this service as partners reach it (the confirmation link)."""

    seed_demo_data: bool | None = None
    """Add demo members and exchange rates at startup; default: outside production."""

    mail_poll_interval_ms: int = 1000

    consumer_fetch_max_wait_ms: int | None = 100
    """Fetch wait of intake's consumers (None: the common ``kafka_fetch_max_wait_ms``).

    Nothing intake consumes needs millisecond latency (status read model, mail), and every
    idle consumer polls the broker once per wait: 10 ms across four consumers costs about
    an eighth of a core with no traffic at all.
    """

    def base_url(self, settings: IntakeSettings) -> str:
        return self.public_url or f"http://{settings.http_host}:{settings.http_port}"

    def seeds(self, settings: IntakeSettings) -> bool:
        if self.seed_demo_data is None:
            return settings.environment != "production"
        return self.seed_demo_data


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRANTFLOW_INTAKE_", extra="ignore")
    service_name: ClassVar[str] = "intake"
    http_port: int = 18001
