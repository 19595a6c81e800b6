"""The one envelope that every message on every topic travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

PayloadT = TypeVar("PayloadT", bound=BaseModel)

# Namespace for ids derived from business keys: the same key always yields the same id,
# so a retried activity or a replayed request publishes the same event id.
GRANTFLOW_NAMESPACE = uuid.UUID("6f1f8a5e-3b0c-4b59-9a43-0c8f6a0d2e71")


def deterministic_id(*parts: str) -> uuid.UUID:
    """An id derived from its parts: ``deterministic_id(workflow_id, "reserve-funds", "1")``."""
    return uuid.uuid5(GRANTFLOW_NAMESPACE, ":".join(parts))


class Envelope(BaseModel, Generic[PayloadT]):
    """Metadata common to every event and command, and its typed payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID = Field(description="Unique id; consumers deduplicate on it.")
    event_type: str = Field(description="Name of the payload model, e.g. ApplicationSubmitted.")
    schema_version: int = Field(ge=1, description="Version of the payload schema.")
    occurred_at: AwareDatetime
    producer: str = Field(description="The service or component that produced the message.")
    application_id: str = Field(
        min_length=1, description="The application this is about; also the Kafka key."
    )
    correlation_id: str = Field(description="Shared by every message of one business flow.")
    causation_id: str | None = Field(
        default=None, description="The event id of the message that caused this one."
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
