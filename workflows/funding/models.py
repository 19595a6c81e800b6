"""Inputs, results, queries and updates of the exchange-funding workflow (pydantic models).

They travel through Temporal with ``temporalio.contrib.pydantic.pydantic_data_converter``.
One model per input, so fields can be added without breaking running workflows.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.envelope import Envelope
from shared.contracts.intake import ApplicationSubmitted
from shared.contracts.money import Money
from shared.contracts.stages import FINAL_STAGES as FINAL_STAGES  # re-exported
from shared.contracts.stages import Stage as Stage  # re-exported
from shared.contracts.workflows import Amounts, Deadline, EscalationKind

WORKFLOW_ID_PREFIX = "application-"
# The memo key under which a lifecycle keeps its ``LifecycleView`` (as JSON).
LIFECYCLE_MEMO = "lifecycle"


def workflow_id(application_id: str) -> str:
    """The one workflow of an application."""
    return f"{WORKFLOW_ID_PREFIX}{application_id}"


NOT_WITHDRAWABLE = FINAL_STAGES | {
    Stage.FINAL_PAYMENT,
    Stage.CLOSING,
    Stage.WITHDRAWING,
    Stage.CANCELLING,
}
OVERRIDABLE = frozenset(
    {Stage.REVIEW, Stage.REVIEWERS_SHORT, Stage.DECLINED, Stage.REVISION_REQUESTED}
)
AMENDABLE = frozenset({Stage.AWAITING_EXCHANGE})
# The exchange is still ahead: an amendment that arrives now waits for an officer's decision.
EXCHANGE_AHEAD = frozenset(
    {
        Stage.AWARDED,
        Stage.FUNDS_RESERVATION,
        Stage.WAITLISTED,
        Stage.ADVANCE_PAYMENT,
        Stage.PAYMENT_ESCALATED,
        Stage.AWAITING_EXCHANGE,
    }
)
# The exchange is over but the final payment is not made: an approved amendment can still
# change the award (a cut below what was paid is refunded) before the final payment.
EXCHANGE_OVER = frozenset(
    {
        Stage.REPORT_DUE,
        Stage.REPORT_OVERDUE,
        Stage.REPORT_REVIEW,
        Stage.REPORT_CHANGES_REQUESTED,
    }
)
# An amendment decided in these stages is applied at the next point that can take it: when
# the wait for the exchange begins, or before the final payment.
DECIDED_FOR_LATER = (EXCHANGE_AHEAD - AMENDABLE) | EXCHANGE_OVER
_OPEN = frozenset(Stage) - FINAL_STAGES
# Where an escalation of each kind can still be acted upon: leaving them resolves it (a
# partner decided, a round decided, a payment sent again, a report arrived).
ESCALATION_STAGES: dict[EscalationKind, frozenset[Stage]] = {
    "partner_unconfirmed": frozenset({Stage.PARTNER_UNCONFIRMED}),
    "reviewers_short": frozenset({Stage.REVIEWERS_SHORT}),
    "reviews_late": frozenset({Stage.REVIEW}),
    "payment_failing": frozenset({Stage.PAYMENT_ESCALATED}),
    "report_overdue": frozenset({Stage.REPORT_OVERDUE}),
    "amendment_waiting": EXCHANGE_AHEAD | EXCHANGE_OVER,
    "wide_score_spread": frozenset({Stage.REVIEW}),
    "command_unanswered": _OPEN,
    "other": _OPEN,
}


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FundingInput(Model):
    submission: Envelope[ApplicationSubmitted]
    search_attributes: bool = Field(
        default=True,
        description="Upsert the Grantflow* search attributes (the server must have them).",
    )


class FundingResult(Model):
    application_id: str
    stage: Stage
    reason: str | None
    amounts: Amounts


class Transition(Model):
    sequence: int
    stage: Stage
    previous: Stage | None
    at: datetime
    reason: str | None = None


class StageView(Model):
    stage: Stage
    entered_at: datetime
    previous: Stage | None
    reason: str | None


class OutstandingCommand(Model):
    command_id: str
    step: str
    topic: str
    sends: int
    first_sent_at: datetime
    next_send_at: datetime | None


class PendingAmendment(Model):
    amendment_id: str
    new_exchange_start: str | None
    new_exchange_end: str | None
    new_award: Money | None
    cancel_exchange: bool
    reason: str


class PartnerStanding(Model):
    name: str
    country: str
    confirmed: bool | None = Field(description="None: no answer yet.")


class LifecycleView(Model):
    application_id: str
    member_id: str
    program_code: str
    partners: list[PartnerStanding] = Field(
        default_factory=list, description="Every partner city and whether it confirmed."
    )
    stage: Stage
    stage_entered_at: datetime
    deadlines: list[Deadline]
    amounts: Amounts
    history: list[Transition]
    outstanding_commands: list[OutstandingCommand]
    pending_amendments: list[PendingAmendment]
    review_round: int
    finished: bool


# -- updates (officers) ---------------------------------------------------------------


class OverrideDecision(Model):
    outcome: Literal["awarded", "declined", "revision_requested", "another_review"] = Field(
        description="'another_review' asks one more reviewer; only while the reviewers' "
        "scores lie too far apart for the lifecycle to decide."
    )
    reason: str = Field(min_length=1, max_length=2000)
    award: Money | None = Field(default=None, description="Awarded amount; default: requested.")
    officer: str = ""


class AmendmentDecision(Model):
    amendment_id: str = Field(min_length=1)
    approve: bool = True
    reason: str = Field(default="", max_length=2000)
    officer: str = ""


class PartnerDecision(Model):
    proceed: bool
    reason: str = Field(min_length=1, max_length=2000)
    officer: str = ""


class ResendCommand(Model):
    step: str | None = Field(
        default=None, description="Only commands of this step (e.g. 'pay'); default: all."
    )
    officer: str = ""


class WithdrawRequest(Model):
    reason: str = Field(min_length=1, max_length=2000)
    requested_by: str = ""


class UpdateAnswer(Model):
    accepted: bool = True
    stage: Stage
    message: str


# -- activities -----------------------------------------------------------------------


class Outgoing(Model):
    """One message for Kafka: the topic's name (unprefixed) and its envelope's parts."""

    topic: str
    event_id: uuid.UUID
    application_id: str
    correlation_id: str
    causation_id: str | None = None
    occurred_at: datetime
    payload: dict[str, Any]


class Publication(Model):
    """What one step of the workflow publishes, in order."""

    messages: list[Outgoing] = Field(min_length=1)
