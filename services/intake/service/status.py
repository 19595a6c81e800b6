"""What other services tell intake: the lifecycle's status, reminders, member standing.

The status read model is what an applicant reads in ``GET /v1/applications/{id}``; each
change and reminder also mails the application's contacts.
"""

from __future__ import annotations

from typing import Any

from services.intake.domain import AWARD_STAGES, DRAFT, TERMINAL_STAGES
from services.intake.notifications import reminder_mail, status_mail
from services.intake.persistence import IntakeStore
from services.intake.service.base import IntakeBase
from shared.contracts.envelope import Envelope
from shared.contracts.reporting import MemberStandingChanged
from shared.contracts.workflows import ApplicationStatusChanged, ReminderDue
from shared.errors import InvalidCommandError
from shared.service import Work


class StatusReadModel(IntakeBase):
    async def apply_status_change(
        self, work: Work, event: Envelope[ApplicationStatusChanged]
    ) -> None:
        """The status read model and history; an older event only joins the history."""
        change = event.payload
        store = IntakeStore(work.session)
        record = await store.application(change.application_id, for_update=True)
        if record is None or record.status == DRAFT:
            raise InvalidCommandError(f"no submitted application {change.application_id}")
        deadlines = [deadline.model_dump(mode="json") for deadline in change.deadlines]
        if not await store.has_status(record.application_id, change.sequence):
            await store.insert_status(
                {
                    "application_id": record.application_id,
                    "sequence": change.sequence,
                    "stage": change.stage,
                    "previous_stage": change.previous_stage,
                    "reason": change.reason,
                    "action_required": change.action_required,
                    "deadlines": deadlines,
                    "occurred_at": event.occurred_at,
                    "event_id": str(event.event_id),
                }
            )
        if change.sequence <= record.status_sequence:
            return
        awarded = (
            record.awarded
            or change.stage in AWARD_STAGES
            or (change.amounts is not None and change.amounts.awarded is not None)
        )
        values: dict[str, Any] = {
            "status": change.stage,
            "status_sequence": change.sequence,
            "deadlines": deadlines,
            "action_required": change.action_required,
            "awarded": awarded,
            "updated_at": work.now,
        }
        if change.amounts is not None:
            values["amounts"] = change.amounts.model_dump(mode="json")
        if change.stage in TERMINAL_STAGES:
            values["open_key"] = None
        await store.update_application(record.application_id, values)
        await work.mail(status_mail(record, change), kind="status_changed")

    async def remind(self, work: Work, event: Envelope[ReminderDue]) -> None:
        reminder = event.payload
        record = await IntakeStore(work.session).application(reminder.application_id)
        if record is None:
            raise InvalidCommandError(f"no application {reminder.application_id}")
        await work.mail(reminder_mail(record, reminder), kind="reminder")

    async def apply_member_standing(
        self, work: Work, event: Envelope[MemberStandingChanged]
    ) -> None:
        """Member standing read model; an event older than the last one applied is ignored."""
        change = event.payload
        store = IntakeStore(work.session)
        member = await store.member(change.member_id, for_update=True)
        if member is None:
            raise InvalidCommandError(f"no member {change.member_id}")
        if (
            member.standing_changed_at is not None
            and event.occurred_at <= member.standing_changed_at
        ):
            return
        await store.update_member(
            change.member_id,
            {
                "good_standing": change.good_standing,
                "standing_reason": None if change.good_standing else change.reason,
                "standing_changed_at": event.occurred_at,
                "updated_at": work.now,
            },
        )
