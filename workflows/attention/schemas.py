"""What the attention list answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shared.contracts.workflows import EscalationKind
from workflows.persistence import AttentionItem


class AttentionItemView(BaseModel):
    application_id: str
    program_code: str | None
    kind: EscalationKind
    stage: str = Field(description="The stage the application was in when it was escalated.")
    reason: str
    raised_at: datetime
    cleared_at: datetime | None = Field(
        description="When the cause was resolved; null while it waits for an officer."
    )

    @classmethod
    def of(cls, item: AttentionItem) -> AttentionItemView:
        return cls.model_validate(item, from_attributes=True)


class AttentionPage(BaseModel):
    items: list[AttentionItemView] = Field(description="Oldest first.")
    total: int = Field(description="Items matching the filters, on every page.")
    limit: int
    offset: int
