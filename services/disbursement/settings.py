"""The disbursement service's settings, read from ``GRANTFLOW_DISBURSEMENT_<NAME>``."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import DEVELOPMENT_WEBHOOK_SECRET, ServiceSettings


class DisbursementSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRANTFLOW_DISBURSEMENT_", extra="ignore")
    service_name: ClassVar[str] = "disbursement"
    http_port: int = 18003
    finance_webhook_secret: SecretStr = SecretStr(DEVELOPMENT_WEBHOOK_SECRET)
    settlement_deadline_seconds: float = Field(
        3600.0, gt=0, description="an instruction unsettled this long after it was sent is re-sent"
    )
    retry_delay_seconds: float = Field(
        60.0,
        ge=0,
        description="pause before re-sending an instruction or a refund request that "
        "finance failed",
    )
    max_payment_attempts: int = Field(
        3,
        ge=1,
        description="sends of one instruction before the payment has failed for good "
        "(DisbursementFailed); disbursement alone retries finance",
    )
    refund_reminder_seconds: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="a refund not received in full this long after it was requested (or "
        "last reminded) is requested again, as a reminder",
    )
    max_refund_reminders: int = Field(
        2,
        ge=0,
        description="reminders of a refund before it is escalated to the officers' attention "
        "list (grants.refund.overdue.v1); it stays due",
    )
    deadline_scan_interval_seconds: float = Field(
        5.0,
        gt=0,
        description="how often unsettled instructions and refunds past due are looked for",
    )

    @property
    def settlement_deadline(self) -> timedelta:
        return timedelta(seconds=self.settlement_deadline_seconds)

    @property
    def refund_reminder(self) -> timedelta:
        return timedelta(seconds=self.refund_reminder_seconds)

    @property
    def retry_delay(self) -> timedelta:
        return timedelta(seconds=self.retry_delay_seconds)

    def _secrets(self) -> dict[str, str]:
        secrets = super()._secrets()
        secrets["finance_webhook_secret"] = self.finance_webhook_secret.get_secret_value()
        return secrets
