"""Disbursement options that ``DisbursementSettings`` does not carry (yet).

Read from ``GRANTFLOW_DISBURSEMENT_<NAME>`` like the service's other settings, so the
embedded stack and a deployment configure them the same way.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DisbursementOptions(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRANTFLOW_DISBURSEMENT_", extra="ignore")

    settlement_deadline_seconds: float = Field(
        3600.0, gt=0, description="an instruction unsettled this long after it was sent is re-sent"
    )
    retry_delay_seconds: float = Field(
        60.0, ge=0, description="pause before re-sending an instruction that finance failed"
    )
    max_payment_attempts: int = Field(
        3, ge=1, description="sends of one instruction before the payment is escalated"
    )
    deadline_scan_interval_seconds: float = Field(
        5.0, gt=0, description="how often unsettled instructions are looked for"
    )
    seed_demo_budgets: bool = Field(
        True, description="give the demo catalog programs a budget (never in production)"
    )

    @property
    def settlement_deadline(self) -> timedelta:
        return timedelta(seconds=self.settlement_deadline_seconds)

    @property
    def retry_delay(self) -> timedelta:
        return timedelta(seconds=self.retry_delay_seconds)
