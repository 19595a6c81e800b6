"""Kafka subscribers of the reporting service.

One consumer reads every topic the service needs (analytics reads most grants topics):
one group join and one fetch loop instead of sixteen.
"""

from __future__ import annotations

import functools

from services.reporting.service import CONSUMED_TOPICS, ReportingService
from shared.messaging.broker import subscribe_by_topic
from shared.service import ServiceRuntime


def subscribe(runtime: ServiceRuntime, service: ReportingService) -> None:
    handlers = {topic: functools.partial(service.handle_event, topic) for topic in CONSUMED_TOPICS}
    subscribe_by_topic(
        runtime.broker, runtime.settings, handlers, group_id=runtime.settings.consumer_group
    )
