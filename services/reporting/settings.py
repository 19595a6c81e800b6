"""The reporting service's settings, read from ``GRANTFLOW_REPORTING_*``."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRANTFLOW_REPORTING_", extra="ignore")
    service_name: ClassVar[str] = "reporting"
    http_port: int = 18004
