"""The attention list's Kafka inputs (the bridge has its own: it signals Temporal)."""

from __future__ import annotations

from shared.contracts.topics import (
    APPLICATION_STATUS_CHANGED,
    ESCALATED_TO_OFFICER,
    REFUND_OVERDUE,
    REFUND_RECEIVED,
)
from shared.messaging.consumers import ConsumerTable
from workflows.attention.service import AttentionService


def consumers(service: AttentionService) -> ConsumerTable:
    return {
        ESCALATED_TO_OFFICER: service.escalated,
        APPLICATION_STATUS_CHANGED: service.status_changed,
        REFUND_OVERDUE: service.refund_overdue,
        REFUND_RECEIVED: service.refund_received,
    }
