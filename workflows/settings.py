"""The workflows process's settings, read from ``GRANTFLOW_WORKFLOWS_*``."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class WorkflowsSettings(ServiceSettings):
    """The Temporal worker, the Kafka bridge and the officers' lifecycle API."""

    model_config = SettingsConfigDict(env_prefix="GRANTFLOW_WORKFLOWS_", extra="ignore")
    service_name: ClassVar[str] = "workflows"
    http_port: int = 18005
