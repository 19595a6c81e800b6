"""The workflow's only side effect: commands and events, written to the process's outbox.

One call carries everything one step of the workflow produced (its status event and its
commands, in order), which keeps histories short. The activity writes them into the
workflows outbox in one transaction and the relay publishes them, as every service's
events are published: so a broker that forgets them gets them again
(``shared.messaging.epoch``). Event ids are chosen by the workflow (deterministic): a
retried activity finds its rows already written and adds nothing.
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from shared.contracts.envelope import Envelope
from shared.contracts.topics import TOPICS_BY_NAME, Producer, Topic
from shared.service import ServiceRuntime
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


class OutboxActivities:
    """Writes the workflow's messages into the process's outbox."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self._runtime = runtime

    @activity.defn(name=PUBLISH)
    async def publish(self, publication: Publication) -> None:
        # Validate everything first: a bad message must not leave half a batch written.
        envelopes = [envelope_of(message) for message in publication.messages]
        outbox = self._runtime.outbox
        async with self._runtime.sessions() as session, session.begin():
            for topic, envelope in envelopes:
                if not await outbox.contains(session, str(envelope.event_id)):
                    await outbox.add(session, topic, envelope)
