"""The workflows process's settings, read from ``GRANTFLOW_WORKFLOWS_*``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class WorkflowsSettings(ServiceSettings):
    """The Temporal worker, the Kafka bridge, the officers' lifecycle API and attention list."""

    model_config = SettingsConfigDict(env_prefix="GRANTFLOW_WORKFLOWS_", extra="ignore")
    service_name: ClassVar[str] = "workflows"
    http_port: int = 18005
    officer_emails: list[str] = Field(
        default_factory=list,
        description="The program officers, mailed when an application is escalated to them "
        "(a JSON list: GRANTFLOW_WORKFLOWS_OFFICER_EMAILS='[\"po@example.org\"]').",
    )
