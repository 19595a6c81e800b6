"""The one envelope that every message on every topic travels in."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.base import ApplicationId

PayloadT = TypeVar("PayloadT", bound=BaseModel)

# Namespace for ids derived from business keys: the same key always yields the same id,
# so a retried activity or a replayed request publishes the same event id.
GRANTFLOW_NAMESPACE = uuid.UUID("6f1f8a5e-3b0c-4b59-9a43-0c8f6a0d2e71")


class _EventIdKey:
    """The deployment's secret for derived ids, set once when the process starts.

    Without it, ids are UUIDv5 of public parts (an application id, a step): anyone who
    knows them can compute the id of a command not sent yet and publish a forgery that the
    inbox then takes for the real one. With it, they are an HMAC of the parts.
    """

    secret: bytes | None = None


def configure_event_ids(secret: str | None) -> None:
    """Key derived ids with ``secret`` (None: the public UUIDv5 ids of a development stack).

    Every process of one deployment must use the same secret, from the first application
    on: the workflow derives its commands' ids in workflow code, and a lifecycle that ran
    under another secret sends its re-sent commands under new ids.
    """
    _EventIdKey.secret = secret.encode() if secret else None


def deterministic_id(*parts: str) -> uuid.UUID:
    """An id derived from its parts: ``deterministic_id(workflow_id, "reserve-funds", "1")``."""
    name = ":".join(parts)
    if _EventIdKey.secret is None:
        return uuid.uuid5(GRANTFLOW_NAMESPACE, name)
    digest = hmac.new(_EventIdKey.secret, name.encode(), hashlib.sha256).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


class Envelope(BaseModel, Generic[PayloadT]):
    """Metadata common to every event and command, and its typed payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID = Field(description="Unique id; consumers deduplicate on it.")
    event_type: str = Field(
        max_length=100, description="Name of the payload model, e.g. ApplicationSubmitted."
    )
    schema_version: int = Field(ge=1, le=1000, description="Version of the payload schema.")
    occurred_at: AwareDatetime
    producer: str = Field(
        max_length=40,
        description="The service that produced the message: the topic's owner, or the "
        "consumers refuse it.",
    )
    application_id: ApplicationId = Field(
        description="The application this is about; also the Kafka key."
    )
    correlation_id: str = Field(
        max_length=64, description="Shared by every message of one business flow."
    )
    causation_id: str | None = Field(
        default=None,
        max_length=64,
        description="The event id of the message that caused this one.",
    )
    payload: PayloadT


def new_envelope(
    payload: PayloadT,
    *,
    producer: str,
    application_id: str,
    schema_version: int = 1,
    event_id: uuid.UUID | None = None,
    correlation_id: str | None = None,
    causation: Envelope[BaseModel] | None = None,
    occurred_at: datetime | None = None,
) -> Envelope[PayloadT]:
    """Wrap a payload; a caused message inherits the correlation id of its cause."""
    event_id = event_id or uuid.uuid4()
    if correlation_id is None:
        correlation_id = causation.correlation_id if causation else str(event_id)
    # A concrete Envelope[Payload] so that the JSON schema and validation know the payload type.
    envelope_type: type[Envelope[PayloadT]] = Envelope[type(payload)]  # type: ignore[misc, assignment]
    return envelope_type(
        event_id=event_id,
        event_type=type(payload).__name__,
        schema_version=schema_version,
        occurred_at=occurred_at or datetime.now(UTC),
        producer=producer,
        application_id=application_id,
        correlation_id=correlation_id,
        causation_id=str(causation.event_id) if causation else None,
        payload=payload,
    )
