"""What each event records for analytics: facts under business keys.

Order-independence and idempotence come from the shape, not from care in each handler:

- an event becomes facts keyed by a business key (a status event by its sequence, a
  settlement by its instruction id, a reservation by its command id ...), so a duplicate,
  even one re-sent under a new event id, is the same fact;
- an application's summary is a pure function of the set of its facts (``summaries``), so
  the order in which they arrived cannot matter, and a rebuild from the topics arrives at
  the same figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.contracts import topics
from shared.contracts.disbursement import (
    AwardAdjusted,
    DisbursementFailed,
    DisbursementSettled,
    RefundReceived,
)
from shared.contracts.envelope import Envelope
from shared.contracts.intake import (
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWithdrawn,
)
from shared.contracts.money import Money
from shared.contracts.reporting import ReportSubmitted
from shared.contracts.review import ReportReviewed, ReviewCompleted
from shared.contracts.topics import Topic
from shared.contracts.workflows import ApplicationStatusChanged, ReportOverdue, RequestReport


@dataclass(frozen=True)
class Fact:
    """One thing that happened to an application, under its business key ``(kind, ref)``."""

    application_id: str
    kind: str
    ref: str
    occurred_at: datetime
    data: dict[str, Any]


def money_data(value: Money | None) -> dict[str, Any] | None:
    return (
        None if value is None else {"amount_minor": value.amount_minor, "currency": value.currency}
    )


def _fact(envelope: Envelope[Any], kind: str, ref: str, **data: Any) -> Fact:
    return Fact(envelope.application_id, kind, ref, envelope.occurred_at, data)


FactMaker = Callable[[Envelope[Any]], Fact]


def _submitted(envelope: Envelope[ApplicationSubmitted]) -> Fact:
    payload = envelope.payload
    return _fact(
        envelope,
        "submitted",
        "",
        member_id=payload.member_id,
        member_name=payload.member_name,
        program_code=payload.program_code,
        program_name=payload.rules.name,
        cycle=payload.cycle,
        focus_area=payload.focus_area,
        partner_country=partner_countries(payload),
        requested=money_data(payload.requested),
        budget=[
            {
                "currency": line.amount.currency,
                "amount_minor": line.amount.amount_minor,
                "converted_currency": line.converted.currency,
                "converted_minor": line.converted.amount_minor,
            }
            for line in payload.budget_lines
        ],
        exchange_end=payload.exchange_end.isoformat(),
        # None, not zeros, for a submission from before expected outcomes were carried: the
        # comparison must not read "planned nothing" into "planned unknown".
        planned=(
            None
            if payload.expected_outcomes is None
            else payload.expected_outcomes.model_dump(mode="json")
        ),
        # The rules snapshot: the tranche plan and the report's due period are its to say.
        rules=payload.rules.model_dump(mode="json"),
    )


def _resubmitted(envelope: Envelope[ApplicationResubmitted]) -> Fact:
    payload = envelope.payload
    return _fact(
        envelope,
        "resubmitted",
        str(payload.revision),
        revision=payload.revision,
        requested=money_data(payload.requested),
    )


def _withdrawn(envelope: Envelope[ApplicationWithdrawn]) -> Fact:
    return _fact(envelope, "withdrawn", "", member_id=envelope.payload.member_id)


def _status(envelope: Envelope[ApplicationStatusChanged]) -> Fact:
    payload = envelope.payload
    awarded = payload.amounts.awarded if payload.amounts else None
    return _fact(
        envelope,
        "status",
        str(payload.sequence),
        sequence=payload.sequence,
        stage=payload.stage,
        program_code=payload.program_code,
        member_id=payload.member_id,
        awarded=money_data(awarded),
    )


def _amount_by_command(kind: str) -> FactMaker:
    """A ledger movement (reserved, refused, released, refund), one per command."""

    def make(envelope: Envelope[Any]) -> Fact:
        payload = envelope.payload
        return _fact(envelope, kind, payload.command_id, amount=money_data(payload.amount))

    return make


def _award_adjusted(envelope: Envelope[AwardAdjusted]) -> Fact:
    payload = envelope.payload
    return _fact(
        envelope, "award_adjusted", payload.command_id, new_award=money_data(payload.new_award)
    )


def _settled(envelope: Envelope[DisbursementSettled]) -> Fact:
    payload = envelope.payload
    # The instruction id is the idempotency key '<application>:<tranche>': one payment each.
    return _fact(
        envelope,
        "settled",
        payload.instruction_id,
        tranche=payload.tranche,
        amount=money_data(payload.amount),
    )


def _payment_failed(envelope: Envelope[DisbursementFailed]) -> Fact:
    payload = envelope.payload
    return _fact(
        envelope,
        "payment_failed",
        f"{payload.instruction_id}:{payload.attempts}",
        tranche=payload.tranche,
    )


def _refund_received(envelope: Envelope[RefundReceived]) -> Fact:
    payload = envelope.payload
    # One receipt per finance reference: the same money announced again is the same fact.
    return _fact(
        envelope,
        "refund_received",
        f"{payload.refund_id}:{payload.finance_reference}",
        amount=money_data(payload.amount),
    )


def _review(envelope: Envelope[ReviewCompleted]) -> Fact:
    payload = envelope.payload
    return _fact(
        envelope,
        "review",
        payload.task_id,
        round=payload.round,
        weighted_total_bp=payload.weighted_total_bp,
        recommendation=payload.recommendation,
    )


def _report_requested(envelope: Envelope[RequestReport]) -> Fact:
    payload = envelope.payload
    # Keyed by due date too: a re-sent request is the same fact, an amended one is new.
    return _fact(
        envelope,
        "report_requested",
        f"{payload.report_id}:{payload.due_on.isoformat()}",
        report_id=payload.report_id,
        due_on=payload.due_on.isoformat(),
        awarded=money_data(payload.awarded),
        member_id=payload.member_id,
        program_code=payload.program_code,
    )


def _report_submitted(envelope: Envelope[ReportSubmitted]) -> Fact:
    payload = envelope.payload
    content = payload.content
    figures: dict[str, int] = {}
    if content is not None:
        outcomes = content.outcomes
        figures = {
            "agreements_signed": outcomes.agreements_signed,
            "trade_leads": outcomes.trade_leads,
            "jobs_created": outcomes.jobs_created,
            "students_exchanged": outcomes.students_exchanged,
            "follow_up_projects": outcomes.follow_up_projects,
            "adults": content.participants.adults,
            "youth": content.participants.youth,
        }
    return _fact(
        envelope,
        "report_submitted",
        f"{payload.report_id}:{payload.revision}",
        report_id=payload.report_id,
        revision=payload.revision,
        due_on=payload.due_on.isoformat() if payload.due_on else None,
        actual_spending=money_data(payload.actual_spending),
        figures=figures,
    )


def _report_reviewed(envelope: Envelope[ReportReviewed]) -> Fact:
    payload = envelope.payload
    # A report may be reviewed several times; nothing but the event itself tells them apart.
    return _fact(
        envelope,
        "report_reviewed",
        str(envelope.event_id),
        report_id=payload.report_id,
        outcome=payload.outcome,
    )


def _report_overdue(envelope: Envelope[ReportOverdue]) -> Fact:
    payload = envelope.payload
    return _fact(envelope, "report_overdue", payload.report_id, due_on=payload.due_on.isoformat())


FACT_MAKERS: dict[Topic, FactMaker] = {
    topics.APPLICATION_SUBMITTED: _submitted,
    topics.APPLICATION_RESUBMITTED: _resubmitted,
    topics.APPLICATION_WITHDRAWN: _withdrawn,
    topics.APPLICATION_STATUS_CHANGED: _status,
    topics.FUNDS_RESERVED: _amount_by_command("reserved"),
    topics.FUNDS_REFUSED: _amount_by_command("refused"),
    topics.FUNDS_RELEASED: _amount_by_command("released"),
    topics.AWARD_ADJUSTED: _award_adjusted,
    topics.DISBURSEMENT_SETTLED: _settled,
    topics.DISBURSEMENT_FAILED: _payment_failed,
    topics.REFUND_REQUESTED: _amount_by_command("refund"),
    topics.REFUND_RECEIVED: _refund_received,
    topics.REVIEW_COMPLETED: _review,
    topics.REQUEST_REPORT: _report_requested,
    topics.REPORT_SUBMITTED: _report_submitted,
    topics.REPORT_REVIEWED: _report_reviewed,
    topics.REPORT_OVERDUE: _report_overdue,
}

ANALYTICS_TOPICS: tuple[Topic, ...] = tuple(FACT_MAKERS)

# Every topic carries its own payload model, so the payload says which topic it came from.
_BY_PAYLOAD: dict[type[BaseModel], FactMaker] = {
    topic.payload: maker for topic, maker in FACT_MAKERS.items()
}


def facts_from_event(envelope: Envelope[Any]) -> list[Fact]:
    """The facts an event adds; none for events analytics does not read."""
    maker = _BY_PAYLOAD.get(type(envelope.payload))
    return [maker(envelope)] if maker else []


def fact_data_text(data: dict[str, Any]) -> str:
    """The stored form of a fact's data; ties between two versions of a fact compare this."""
    return json.dumps(data, sort_keys=True)


def merge_facts(facts: Iterable[Fact]) -> list[Fact]:
    """One fact per key: the earliest version, as the database keeps it (see persistence)."""
    kept: dict[tuple[str, str, str], Fact] = {}
    for fact in facts:
        key = (fact.application_id, fact.kind, fact.ref)
        known = kept.get(key)
        if known is None or (fact.occurred_at, fact_data_text(fact.data)) < (
            known.occurred_at,
            fact_data_text(known.data),
        ):
            kept[key] = fact
    return list(kept.values())


def partner_countries(application: ApplicationSubmitted) -> str:
    """The application's partner countries as one group: 'CA+MX' for a tri-lateral exchange
    (counted once, under its own group, so that money never counts twice)."""
    return "+".join(sorted({partner.country for partner in application.every_partner()}))
