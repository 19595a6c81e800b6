"""Settings: the common base every process reads, and the base of a service's own.

Common settings are read from ``GRANTFLOW_<NAME>``; a service's own settings, in its own
``settings.py``, from ``GRANTFLOW_<SERVICE>_<NAME>`` (``GRANTFLOW_INTAKE_HTTP_PORT``), so
one environment can configure every process of the embedded stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_JWT_SECRET = "grantflow-development-secret-not-for-production"
DEVELOPMENT_WEBHOOK_SECRET = "grantflow-development-webhook-secret"
DEVELOPMENT_LINK_SECRET = "grantflow-development-link-secret-not-for-production"


def _common(default: Any, name: str, description: str) -> Any:
    return Field(
        default,
        validation_alias=AliasChoices(f"GRANTFLOW_{name.upper()}"),
        description=description,
    )


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    environment: Literal["development", "test", "production"] = _common(
        "development", "environment", "production refuses default secrets"
    )
    state_dir: Path = _common(
        Path(".grantflow"), "state_dir", "where the embedded stack keeps its files"
    )
    database_url: str | None = _common(
        None, "database_url", "SQLAlchemy async URL shared by all services; default SQLite"
    )
    kafka_bootstrap_servers: str = _common(
        "127.0.0.1:19092", "kafka_bootstrap_servers", "Kafka bootstrap servers"
    )
    kafka_fetch_max_wait_ms: int = _common(
        10,
        "kafka_fetch_max_wait_ms",
        "consumer fetch wait; low for the embedded broker, which delivers after half of it",
    )
    kafka_session_timeout_ms: int = _common(
        6000,
        "kafka_session_timeout_ms",
        "consumer session timeout; Tansu holds a group join for half of it",
    )
    kafka_heartbeat_interval_ms: int = _common(
        1000, "kafka_heartbeat_interval_ms", "consumer heartbeat interval"
    )
    topic_prefix: str = _common("", "topic_prefix", "prefix for every topic name")
    temporal_address: str = _common("127.0.0.1:17233", "temporal_address", "Temporal frontend")
    temporal_namespace: str = _common("default", "temporal_namespace", "Temporal namespace")
    temporal_task_queue: str = _common(
        "exchange-funding", "temporal_task_queue", "task queue of the funding workflow"
    )
    jwt_secret: SecretStr = _common(
        SecretStr(DEVELOPMENT_JWT_SECRET), "jwt_secret", "HS256 secret for bearer tokens"
    )
    jwt_issuer: str = _common("grantflow", "jwt_issuer", "expected token issuer")
    jwt_audience: str = _common("grantflow-api", "jwt_audience", "expected token audience")
    jwt_jwks_url: str | None = _common(
        None, "jwt_jwks_url", "OIDC JWKS URL; replaces the shared secret when set"
    )
    jwt_max_lifetime_hours: float = _common(
        24.0,
        "jwt_max_lifetime_hours",
        "tokens valid for longer than this (from issue to expiry) are refused",
    )
    link_secret: SecretStr = _common(
        SecretStr(DEVELOPMENT_LINK_SECRET),
        "link_secret",
        "signs the partner cities' one-time links and the pages' CSRF tokens",
    )
    log_level: str = _common("INFO", "log_level", "logging level")
    log_format: Literal["json", "text"] = _common("json", "log_format", "json lines or text")
    dead_letter_after_attempts: int = _common(
        5, "dead_letter_after_attempts", "processing failures before a message is dead-lettered"
    )
    outbox_poll_interval_ms: int = _common(
        200, "outbox_poll_interval_ms", "how often the outbox relay looks for new rows"
    )
    smtp_host: str | None = _common(None, "smtp_host", "SMTP server; unset writes .eml files")
    smtp_port: int = _common(587, "smtp_port", "SMTP port")
    mail_sender: str = _common("grantflow@localhost", "mail_sender", "From address of mail")
    outbox_pass_interval_ms: int = _common(
        50,
        "outbox_pass_interval_ms",
        "while commits keep coming, the least time between two outbox relay passes",
    )
    max_body_bytes: int = _common(256 * 1024, "max_body_bytes", "largest accepted request body")
    outbox_retention_hours: float = _common(
        168.0,
        "outbox_retention_hours",
        "sent events are kept this long, to be published again if the broker forgets them",
    )
    broker_epoch_check_ms: int = _common(
        1000,
        "broker_epoch_check_ms",
        "how often a process checks that the broker still has its data",
    )
    kafka_topic_partitions: int = _common(3, "kafka_topic_partitions", "partitions of each topic")
    kafka_replication_factor: int = _common(
        1, "kafka_replication_factor", "copies of each partition (3 on a production cluster)"
    )
    kafka_min_insync_replicas: int | None = _common(
        None, "kafka_min_insync_replicas", "copies that must have a write before it is acknowledged"
    )

    service_name: ClassVar[str] = "grantflow"

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> CommonSettings:
        if self.environment == "production":
            for name, value in self._secrets().items():
                if value in (DEVELOPMENT_JWT_SECRET, DEVELOPMENT_WEBHOOK_SECRET, ""):
                    raise ValueError(
                        f"{name} must be set in production (GRANTFLOW_{name.upper()}); "
                        "refusing to start with the development default"
                    )
        return self

    def _secrets(self) -> dict[str, str]:
        if self.jwt_jwks_url:
            return {}
        return {"jwt_secret": self.jwt_secret.get_secret_value()}

    @property
    def mail_dir(self) -> Path:
        return self.state_dir / "mail"


class ServiceSettings(CommonSettings):
    """A process that serves HTTP and owns tables."""

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    service_database_url: str | None = Field(
        default=None, description="overrides GRANTFLOW_DATABASE_URL for this service only"
    )

    def effective_database_url(self) -> str:
        url = self.service_database_url or self.database_url
        if url:
            return url
        return f"sqlite+aiosqlite:///{(self.state_dir / 'data' / f'{self.service_name}.db')}"

    @property
    def consumer_group(self) -> str:
        return f"{self.topic_prefix}grantflow-{self.service_name}"
