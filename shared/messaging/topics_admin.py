"""Creating the topics: every topic of the registry, its dead letters and the epoch marker."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.contracts.topics import broker_topic_names

logger = logging.getLogger(__name__)

# aiokafka connection options (security, from CommonSettings.kafka_security); none locally.
NO_OPTIONS: Mapping[str, Any] = {}

EPOCH_TOPIC_NAME = "grantflow.broker-epoch"


@dataclass(frozen=True)
class TopicLayout:
    """How topics are created: partitions, copies, and copies that must acknowledge."""

    partitions: int = 3
    replication_factor: int = 1
    min_insync_replicas: int | None = None

    def new_topic(self, name: str, partitions: int | None = None) -> NewTopic:
        configs: dict[str, str] = {}
        if self.min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(self.min_insync_replicas)
        return NewTopic(
            name,
            num_partitions=partitions or self.partitions,
            replication_factor=self.replication_factor,
            topic_configs=configs,
        )


async def ensure_topics(
    bootstrap_servers: str,
    names: list[str],
    layout: TopicLayout | int = TopicLayout(),
    connection: Mapping[str, Any] = NO_OPTIONS,
) -> int:
    """Create the topics of ``names`` that are missing, before any consumer starts (a late
    topic may go unseen for minutes); return how many were created."""
    if isinstance(layout, int):
        layout = TopicLayout(partitions=layout)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000, **connection
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            # One partition for the epoch marker: the epoch is the first record of it.
            layout.new_topic(name, partitions=1 if name.endswith(EPOCH_TOPIC_NAME) else None)
            for name in dict.fromkeys(names)
            if name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
            logger.info("created %s topics", len(new))
        return len(new)
    finally:
        await admin.close()


def all_topic_names(prefix: str = "") -> list[str]:
    """Every topic, its dead letters and the epoch marker, as they must exist."""
    return [*broker_topic_names(prefix), f"{prefix}{EPOCH_TOPIC_NAME}"]


async def ensure_all_topics(
    bootstrap_servers: str,
    layout: TopicLayout,
    prefix: str = "",
    connection: Mapping[str, Any] = NO_OPTIONS,
) -> int:
    return await ensure_topics(bootstrap_servers, all_topic_names(prefix), layout, connection)


async def describe_partitions(
    bootstrap_servers: str, names: list[str], connection: Mapping[str, Any] = NO_OPTIONS
) -> dict[str, int]:
    """How many partitions each of ``names`` has on the broker (absent ones are left out)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000, **connection
    )
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {
        str(topic["topic"]): len(topic["partitions"])
        for topic in described
        if topic.get("error_code", 0) == 0
    }
