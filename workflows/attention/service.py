"""The officers' attention list: escalations in, items out, cleared when resolved.

An escalation becomes an item and a mail to the program officers. A status event lists
the kinds still waiting for an officer: an open item of the application raised before
that status whose kind is not listed is cleared. Status events older than the last one
seen change nothing; an escalation that a newer status event already resolved is
recorded as cleared, and mails nobody.

A refund still due after its last reminder (disbursement's ``grants.refund.overdue.v1``)
is an item of kind ``refund_overdue`` and a mail; status events leave it alone, and a
``grants.refund.received.v1`` after which the application owes nothing clears it.
"""

from __future__ import annotations

from typing import get_args

from shared.clock import Clock, utc_now
from shared.contracts.disbursement import RefundOverdue, RefundReceived
from shared.contracts.envelope import Envelope
from shared.contracts.workflows import (
    ApplicationStatusChanged,
    EscalatedToOfficer,
    EscalationKind,
)
from shared.service import Service, ServiceRuntime, Work
from workflows.attention.domain import (
    NOT_CLEARED_BY_STATUS,
    REFUND_OVERDUE,
    officer_mail,
    refund_escalation,
    resolved_before_arrival,
)
from workflows.attention.schemas import AttentionItemView, AttentionPage
from workflows.persistence import AttentionStore, LastStatus
from workflows.settings import WorkflowsSettings


class AttentionService(Service):
    def __init__(
        self, runtime: ServiceRuntime, settings: WorkflowsSettings, *, clock: Clock = utc_now
    ) -> None:
        super().__init__(runtime, clock=clock)
        self.settings = settings

    async def escalated(self, work: Work, event: Envelope[EscalatedToOfficer]) -> None:
        escalation = event.payload
        store = AttentionStore(work.session)
        last = await store.lock_status(escalation.application_id, escalation.program_code)
        resolved = resolved_before_arrival(escalation, last)
        await store.add_item(
            application_id=escalation.application_id,
            program_code=escalation.program_code or last.program_code,
            kind=escalation.kind,
            stage=escalation.stage,
            reason=escalation.reason,
            raised_sequence=escalation.sequence,
            raised_at=event.occurred_at,
            cleared_at=(last.at or work.now) if resolved else None,
        )
        if not resolved:
            mail = officer_mail(escalation, self.settings.officer_emails)
            await work.mail(mail, kind=f"attention:{escalation.kind}")

    async def status_changed(self, work: Work, event: Envelope[ApplicationStatusChanged]) -> None:
        status = event.payload
        store = AttentionStore(work.session)
        last = await store.lock_status(status.application_id, status.program_code)
        if status.sequence <= last.sequence:
            return  # an older status arriving late: the newer one already spoke
        waiting: list[str] = list(status.waiting_for_officer)
        await store.save_status(
            status.application_id,
            LastStatus(status.program_code, status.sequence, waiting, event.occurred_at),
        )
        await store.clear_resolved(
            status.application_id,
            sequence=status.sequence,
            waiting=[*waiting, *NOT_CLEARED_BY_STATUS],
            now=event.occurred_at,
        )

    async def refund_overdue(self, work: Work, event: Envelope[RefundOverdue]) -> None:
        escalation = refund_escalation(event.payload)
        store = AttentionStore(work.session)
        # The lock orders this with the application's refund receipts and status events.
        await store.lock_status(escalation.application_id, escalation.program_code)
        await store.add_item(
            application_id=escalation.application_id,
            program_code=escalation.program_code,
            kind=escalation.kind,
            stage=escalation.stage,
            reason=escalation.reason,
            raised_sequence=None,
            raised_at=event.occurred_at,
            cleared_at=None,
        )
        mail = officer_mail(escalation, self.settings.officer_emails)
        await work.mail(mail, kind=f"attention:{escalation.kind}")

    async def refund_received(self, work: Work, event: Envelope[RefundReceived]) -> None:
        received = event.payload
        if received.refund_due.amount_minor > 0:
            return  # a part: the rest is still due, the item stays
        store = AttentionStore(work.session)
        await store.lock_status(received.application_id, None)
        # Every kind but refund_overdue counts as waiting: only the refund items clear.
        others = [kind for kind in get_args(EscalationKind) if kind != REFUND_OVERDUE]
        await store.clear_resolved(
            received.application_id,
            sequence=2**31 - 1,
            waiting=others,
            now=event.occurred_at,
        )

    async def attention(
        self,
        work: Work,
        *,
        program_code: str | None = None,
        kind: EscalationKind | None = None,
        include_cleared: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> AttentionPage:
        items, total = await AttentionStore(work.session).items(
            program_code=program_code,
            kind=kind,
            include_cleared=include_cleared,
            limit=limit,
            offset=offset,
        )
        return AttentionPage(
            items=[AttentionItemView.of(item) for item in items],
            total=total,
            limit=limit,
            offset=offset,
        )
