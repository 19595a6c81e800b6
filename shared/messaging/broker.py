"""The Kafka broker of a process and the one way to subscribe a business handler."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.contracts.envelope import Envelope
from shared.contracts.topics import Topic
from shared.messaging.deadletter import DeadLetterPolicy, DeadLetterStore, PoisonMessage
from shared.messaging.outbox import Publisher
from shared.messaging.pacing import FetchPacing
from shared.settings import CommonSettings

logger = logging.getLogger(__name__)


def create_broker(
    settings: CommonSettings, *, client_id: str, store: DeadLetterStore | None = None
) -> tuple[KafkaBroker, DeadLetterPolicy]:
    """A broker whose subscribers commit only after processing and dead-letter poison."""
    policy = DeadLetterPolicy(store=store, max_attempts=settings.dead_letter_after_attempts)
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        security=faststream_security(settings),
        middlewares=(policy,),
        logger=logging.getLogger(f"faststream.{client_id}"),
        # Tansu refuses idempotent producers (InitProducerId); the outbox and the inbox
        # give exactly-once effects instead.
        enable_idempotence=False,
        acks="all",
        request_timeout_ms=10_000,
    )
    policy.publish = kafka_publisher(broker)
    return broker, policy


def faststream_security(settings: CommonSettings) -> BaseSecurity | None:
    """The configured Kafka security as FastStream wants it (None: plaintext)."""
    options = settings.kafka_security()
    context = options.get("ssl_context")
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context)
    username = options["sasl_plain_username"] or ""
    password = options["sasl_plain_password"] or ""
    secured = protocol == "SASL_SSL"
    kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    return kinds[options["sasl_mechanism"]](
        username, password, ssl_context=context, use_ssl=secured
    )


def kafka_publisher(broker: KafkaBroker) -> Publisher:
    async def publish(*, topic: str, key: str, body: bytes, headers: dict[str, str]) -> None:
        await broker.publish(body, topic=topic, key=key.encode(), headers=headers)

    return publish


def subscriber(
    broker: KafkaBroker | KafkaRouter,
    settings: CommonSettings,
    *topics: Topic,
    group_id: str,
) -> Callable[[Callable[..., Any]], Any]:
    """Subscribe a handler with explicit acknowledgement (see ``deadletter``).

    Give one consumer several topics rather than making several consumers in one group:
    each consumer that joins a group makes the others rebalance, and on Tansu every join
    waits for half the session timeout. The consumer starts at the idle fetch wait; the
    handler speeds it up while messages flow (``subscribe_by_topic``, ``pacing``).
    """
    if not topics:
        raise ValueError("subscribe to at least one topic")
    first = topics[0]
    return broker.subscriber(
        *(topic.qualified(settings.topic_prefix) for topic in topics),
        group_id=group_id,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_idle_fetch_max_wait_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        title=f"{first.name}:{group_id}" if len(topics) == 1 else f"{group_id}",
        description="; ".join(f"{topic.name}: {topic.description}" for topic in topics),
    )


EventHandler = Callable[[Envelope[Any]], Awaitable[None]]


def fetch_pacing(settings: CommonSettings) -> FetchPacing:
    """Consumers start at the idle fetch wait (see ``subscriber``) and speed up on traffic."""
    return FetchPacing(
        busy_wait_ms=settings.kafka_fetch_max_wait_ms,
        idle_wait_ms=settings.kafka_idle_fetch_max_wait_ms,
        quiet_after=settings.kafka_fetch_quiet_after_ms / 1000,
    )


def subscribe_by_topic(
    broker: KafkaBroker | KafkaRouter,
    settings: CommonSettings,
    handlers: Mapping[Topic, EventHandler],
    *,
    group_id: str,
) -> None:
    """One consumer for several topics, each message parsed as its topic's envelope.

    The service joins its group once instead of once per topic (see ``subscriber``); an
    envelope that fails validation raises, and the dead-letter middleware takes it. So does
    an envelope whose producer is not the topic's owner: whoever can write to a topic must
    not be able to speak for its owner (settle payments, confirm partners), nor make the
    inbox drop the owner's real event by reusing its id. The broker's ACLs (README) keep
    other principals from writing at all; this check holds where they are not set.
    """
    by_name = {
        topic.qualified(settings.topic_prefix): (topic, handler)
        for topic, handler in handlers.items()
    }
    pacing = fetch_pacing(settings)

    async def on_event(message: KafkaMessage) -> None:
        pacing.message_arrived(message.consumer)
        record = message.raw_message
        assert not isinstance(record, tuple), "batch consumers are not supported"
        topic, handler = by_name[record.topic]
        envelope_type: type[Envelope[Any]] = Envelope[topic.payload]  # type: ignore[name-defined]
        envelope = envelope_type.model_validate_json(message.body)
        if envelope.producer != topic.owner.value:
            raise PoisonMessage(
                f"producer {envelope.producer!r} does not own {topic.name} "
                f"(its owner is {topic.owner.value})"
            )
        await handler(envelope)

    subscriber(broker, settings, *handlers, group_id=group_id)(on_event)
