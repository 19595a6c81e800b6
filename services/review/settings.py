"""The review service's settings, read from ``GRANTFLOW_REVIEW_*``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ReviewSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRANTFLOW_REVIEW_", extra="ignore")
    service_name: ClassVar[str] = "review"
    http_port: int = 18002
    reminder_interval_ms: int = Field(
        default=1000, description="how often due reminders are looked for and mail is sent"
    )
