"""The workflow's only side effects: commands and events published to Kafka.

The workflow process has no database, so there is no outbox here: the activity publishes
straight to the broker and Temporal retries it with backoff until Kafka takes the messages.
One call carries everything one step of the workflow produced (its status event and its
commands, in order), which keeps histories short. Event ids are chosen by the workflow
(deterministic), so a retried activity republishes the same ids and consumers' inboxes
drop the copies.
"""

from __future__ import annotations

from faststream.kafka import KafkaBroker
from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from shared.contracts.envelope import Envelope
from shared.contracts.topics import TOPICS_BY_NAME, Producer, Topic
from shared.messaging.outbox import message_headers
from workflows.funding.models import Outgoing, Publication

PUBLISH = "publish"


def envelope_of(message: Outgoing) -> tuple[Topic, Envelope[BaseModel]]:
    """The topic and the envelope of a message; a message that can never be valid is refused."""
    topic = TOPICS_BY_NAME.get(message.topic)
    if topic is None or topic.owner is not Producer.WORKFLOWS:
        raise ApplicationError(
            f"{message.topic} is not a topic the workflow publishes", non_retryable=True
        )
    try:
        payload = topic.payload.model_validate(message.payload)
        envelope_type: type[Envelope[BaseModel]] = Envelope[topic.payload]  # type: ignore[name-defined]
        envelope = envelope_type(
            event_id=message.event_id,
            event_type=topic.payload.__name__,
            schema_version=1,
            occurred_at=message.occurred_at,
            producer=Producer.WORKFLOWS.value,
            application_id=message.application_id,
            correlation_id=message.correlation_id,
            causation_id=message.causation_id,
            payload=payload,
        )
    except ValidationError as error:
        raise ApplicationError(
            f"invalid {topic.payload.__name__}: {error}", non_retryable=True
        ) from error
    return topic, envelope


class KafkaActivities:
    """Publishes the workflow's messages with the process's broker."""

    def __init__(self, broker: KafkaBroker, topic_prefix: str = "") -> None:
        self._broker = broker
        self._prefix = topic_prefix

    @activity.defn(name=PUBLISH)
    async def publish(self, publication: Publication) -> None:
        # Validate everything first: a bad message must not leave half a batch published.
        envelopes = [envelope_of(message) for message in publication.messages]
        for topic, envelope in envelopes:
            await self._broker.publish(
                envelope.model_dump_json().encode(),
                topic=topic.qualified(self._prefix),
                key=envelope.application_id.encode(),
                headers=message_headers(envelope),
            )
