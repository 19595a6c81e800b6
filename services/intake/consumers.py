"""What the intake service consumes: the table of topics and the use case each runs."""

from __future__ import annotations

from services.intake.domain import partner_confirmation_subject
from services.intake.service import IntakeService
from shared.contracts.topics import (
    APPLICATION_STATUS_CHANGED,
    MEMBER_STANDING_CHANGED,
    REMINDER_DUE,
    REQUEST_PARTNER_CONFIRMATION,
)
from shared.contracts.workflows import RequestPartnerConfirmation
from shared.messaging.consumers import Command, ConsumerTable


def _partner_confirmation(command: RequestPartnerConfirmation) -> str:
    # One subject per partner: a repeated request gets its own partner's answer. A receipt
    # recorded with the application's one subject keeps it, and so does its link.
    return partner_confirmation_subject(command.application_id, command.partner_contact_email)


def consumers(service: IntakeService) -> ConsumerTable:
    return {
        APPLICATION_STATUS_CHANGED: service.apply_status_change,
        REMINDER_DUE: service.remind,
        MEMBER_STANDING_CHANGED: service.apply_member_standing,
        REQUEST_PARTNER_CONFIRMATION: Command(
            service.request_partner_confirmation, subject=_partner_confirmation
        ),
    }
