"""The base of every payload."""

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """Unknown fields are an error, not silently dropped; payloads are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
