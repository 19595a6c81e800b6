"""Kafka subscribers of the reporting service.

One consumer reads every topic the service needs (analytics reads most grants topics):
one fetch loop instead of sixteen idle ones. Acknowledgement and dead letters are the
shared middleware's, exactly as for ``shared.messaging.broker.subscriber``.
"""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaMessage
from faststream.middlewares import AckPolicy

from services.reporting.service import CONSUMED_TOPICS, ReportingService, envelope_model
from shared.service import ServiceRuntime


def subscribe(runtime: ServiceRuntime, service: ReportingService) -> None:
    settings = runtime.settings
    by_name = {topic.qualified(settings.topic_prefix): topic for topic in CONSUMED_TOPICS}
    models = {name: envelope_model(topic) for name, topic in by_name.items()}

    @runtime.broker.subscriber(
        *by_name,
        group_id=settings.consumer_group,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        title=f"reporting:{settings.consumer_group}",
        description="Report obligations, standing and analytics from the grants topics.",
    )
    async def on_grants_event(body: Any, message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)
        envelope = models[record.topic].model_validate_json(record.value)  # invalid: dead letter
        await service.handle_event(by_name[record.topic], envelope)
