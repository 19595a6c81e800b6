"""Settings: the common base every process reads, and the base of a service's own.

Common settings are read from ``GRANTFLOW_<NAME>``; a service's own settings, in its own
``settings.py``, from ``GRANTFLOW_<SERVICE>_<NAME>`` (``GRANTFLOW_INTAKE_HTTP_PORT``), so
one environment can configure every process of the embedded stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Final, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_JWT_SECRET = "grantflow-development-secret-not-for-production"
DEVELOPMENT_WEBHOOK_SECRET = "grantflow-development-webhook-secret"
DEVELOPMENT_LINK_SECRET = "grantflow-development-link-secret-not-for-production"
DEVELOPMENT_SECRETS: Final = frozenset(
    {DEVELOPMENT_JWT_SECRET, DEVELOPMENT_WEBHOOK_SECRET, DEVELOPMENT_LINK_SECRET}
)
# An HS256 key shorter than its 32-byte hash can be searched for offline from one token.
MIN_SECRET_BYTES: Final = 32


class ProductionSettingsError(ValueError):
    """Settings that production refuses; the message names every problem and its variable."""


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
    database_pool_size: int = _common(
        20,
        "database_pool_size",
        "PostgreSQL connections a process keeps open (each process also holds two for its "
        "leases); replicas times this must stay under the server's max_connections",
    )
    database_max_overflow: int = _common(
        10, "database_max_overflow", "PostgreSQL connections opened beyond the pool under load"
    )
    kafka_bootstrap_servers: str = _common(
        "127.0.0.1:19092", "kafka_bootstrap_servers", "Kafka bootstrap servers"
    )
    kafka_fetch_max_wait_ms: int = _common(
        5,
        "kafka_fetch_max_wait_ms",
        "consumer fetch wait while messages flow; low for the embedded broker, which "
        "delivers after half of it",
    )
    kafka_idle_fetch_max_wait_ms: int = _common(
        500,
        "kafka_idle_fetch_max_wait_ms",
        "consumer fetch wait after a quiet spell, so that idle consumers rarely ask",
    )
    kafka_fetch_quiet_after_ms: int = _common(
        2000,
        "kafka_fetch_quiet_after_ms",
        "how long without a message before a consumer waits the idle fetch wait",
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
    event_id_secret: SecretStr | None = _common(
        None,
        "event_id_secret",
        "keys the ids derived from business keys (HMAC), so nobody can compute the id of a "
        "command not sent yet; one value for every process, set before the first application",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = _common(
        "PLAINTEXT", "kafka_security_protocol", "how processes reach Kafka"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = _common(
        None, "kafka_sasl_mechanism", "SASL mechanism, with SASL_SSL"
    )
    kafka_sasl_username: str | None = _common(
        None, "kafka_sasl_username", "this process's Kafka principal"
    )
    kafka_sasl_password: SecretStr | None = _common(
        None, "kafka_sasl_password", "the principal's password"
    )
    kafka_ssl_cafile: str | None = _common(
        None, "kafka_ssl_cafile", "CA bundle that signed the brokers' certificates"
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
        200,
        "outbox_poll_interval_ms",
        "how often the outbox relay looks for rows another process committed",
    )
    outbox_idle_poll_interval_ms: int = _common(
        1000,
        "outbox_idle_poll_interval_ms",
        "the same after two seconds without an event to relay",
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
    temporal_retention_days: int = _common(
        30,
        "temporal_retention_days",
        "days Temporal keeps a closed application's history (set by grantflow setup)",
    )
    otlp_endpoint: str | None = _common(
        None,
        "otlp_endpoint",
        "OTLP/HTTP endpoint of a trace collector, e.g. http://otel-collector:4318; "
        "unset: no tracing",
    )
    trace_sample_ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        validation_alias=AliasChoices("GRANTFLOW_TRACE_SAMPLE_RATIO"),
        description="share of traces kept, decided where a trace begins (an HTTP request)",
    )
    metrics_refresh_ms: int = _common(
        15_000,
        "metrics_refresh_ms",
        "how often the outbox backlog, consumer lag and applications per stage are measured",
    )

    service_name: ClassVar[str] = "grantflow"

    @model_validator(mode="after")
    def _refuse_development_values_in_production(self) -> CommonSettings:
        if self.environment == "production":
            problems = self._production_problems()
            if problems:
                raise ProductionSettingsError(
                    "refusing to start in production: " + "; ".join(problems)
                )
        return self

    def _production_problems(self) -> list[str]:
        """What production refuses: every secret must be set, long, and not a development
        value (a subclass adds its own secrets through ``_secrets``)."""
        problems = []
        for name, value in self._secrets().items():
            variable = self.env_name(name)
            if not value or value in DEVELOPMENT_SECRETS:
                problems.append(
                    f"{name} must be set in production ({variable}); "
                    "it is empty or a development default"
                )
            elif len(value.encode()) < MIN_SECRET_BYTES:
                problems.append(
                    f"{name} ({variable}) must be at least {MIN_SECRET_BYTES} bytes in "
                    f"production, not {len(value.encode())}"
                )
        return problems

    def _secrets(self) -> dict[str, str]:
        secrets = {
            "link_secret": self.link_secret.get_secret_value(),
            "event_id_secret": self.event_id_secret.get_secret_value()
            if self.event_id_secret
            else "",
        }
        if not self.jwt_jwks_url:  # tokens are verified with the identity provider's keys
            secrets["jwt_secret"] = self.jwt_secret.get_secret_value()
        return secrets

    def kafka_security(self) -> dict[str, Any]:
        """aiokafka's connection options for the configured security protocol."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            import ssl

            options["ssl_context"] = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
        if self.kafka_security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism or "SCRAM-SHA-512"
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return options

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable a field is read from."""
        alias = cls.model_fields[field].validation_alias
        if isinstance(alias, AliasChoices):
            return str(alias.choices[0])
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Every setting of this class by its environment variable."""
        return {cls.env_name(field): field for field in cls.model_fields}

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

    def _production_problems(self) -> list[str]:
        problems = super()._production_problems()
        if self.effective_database_url().startswith("sqlite"):
            problems.append(
                f"{self.service_name} needs PostgreSQL in production, not SQLite "
                f"(set {self.env_name('database_url')} or "
                f"{self.env_name('service_database_url')})"
            )
        # A public URL is where people outside reach this service (links in mail); the
        # default, the address the process binds, means nothing to them.
        for name in type(self).model_fields:
            if name.endswith("public_url") and not getattr(self, name):
                problems.append(
                    f"{name} must be set in production ({self.env_name(name)}): links "
                    f"would point at {self.http_host}:{self.http_port}"
                )
        return problems

    def effective_database_url(self) -> str:
        url = self.service_database_url or self.database_url
        if url:
            return url
        return f"sqlite+aiosqlite:///{(self.state_dir / 'data' / f'{self.service_name}.db')}"

    @property
    def consumer_group(self) -> str:
        return f"{self.topic_prefix}grantflow-{self.service_name}"
