"""The service's Kafka inputs: the workflow's funding commands and finance's answers."""

from __future__ import annotations

from services.disbursement.service import DisbursementService
from shared.contracts.topics import (
    ADJUST_AWARD,
    FINANCE_REFUND_FAILED,
    FINANCE_REFUND_RECEIVED,
    PAY_TRANCHE,
    PAYMENT_FAILED,
    PAYMENT_SETTLED,
    PROGRAM_CYCLE_OPENED,
    RELEASE_FUNDS,
    REQUEST_REFUND,
    RESERVE_FUNDS,
)
from shared.messaging.consumers import ConsumerTable


def consumers(service: DisbursementService) -> ConsumerTable:
    return {
        RESERVE_FUNDS: service.reserve,
        RELEASE_FUNDS: service.release,
        PAY_TRANCHE: service.pay,
        REQUEST_REFUND: service.refund,
        ADJUST_AWARD: service.adjust,
        PAYMENT_SETTLED: service.finance_answered,
        PAYMENT_FAILED: service.finance_answered,
        FINANCE_REFUND_RECEIVED: service.refund_answered,
        FINANCE_REFUND_FAILED: service.refund_answered,
        PROGRAM_CYCLE_OPENED: service.open_cycle,
    }
