"""The mail intake writes to applicants and partners, built from what it is about.

A use case queues a message with ``Work.mail`` in the same transaction as the state
change that causes it; the shared mail relay sends it (``shared.mail``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.intake.domain import DraftFields, stage_words
from services.intake.persistence import ApplicationRecord, PartnerLinkRecord
from shared.contracts.intake import ApplicationSubmitted
from shared.contracts.workflows import ApplicationStatusChanged, ReminderDue
from shared.mail import Mail

SIGNATURE = "\n\n-- \ngrantflow, the sister-city exchange-funding service\n"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def title_of(record: ApplicationRecord) -> str:
    return record.title or f"application {record.application_id}"


def _contacts(record: ApplicationRecord) -> tuple[str, ...]:
    return tuple(
        contact.email for contact in DraftFields.model_validate(record.draft).contacts or ()
    )


def submitted_mail(submission: ApplicationSubmitted) -> Mail:
    title = submission.title
    partners = "your partners'" if submission.other_partners else "your partner's"
    return Mail(
        to=tuple(submission.contact_emails),
        subject=f"Application received: {title}",
        body=(
            f'We received your application to {submission.rules.name}, "{title}", '
            f"requesting {submission.requested}.\n"
            f"Application id: {submission.application_id}\n\n"
            f"We will write again at each step: screening, {partners} confirmation, "
            "review and the decision." + SIGNATURE
        ),
        application_id=submission.application_id,
    )


def status_mail(record: ApplicationRecord, change: ApplicationStatusChanged) -> Mail:
    title = title_of(record)
    subject = f"{title}: {stage_words(change.stage)}"
    if change.action_required:
        subject = f"Action required - {subject}"
    body = f'Your application "{title}" is now: {stage_words(change.stage)}.'
    if change.reason:
        body += f"\nReason: {change.reason}"
    if change.action_required:
        body += f"\n\nWhat you need to do: {change.action_required}"
    if change.deadlines:
        body += "\n\nDeadlines ahead:\n" + "\n".join(
            f"  - {stage_words(deadline.name)}: {_when(deadline.due_at)}"
            for deadline in change.deadlines
        )
    body += f"\n\nApplication id: {record.application_id}" + SIGNATURE
    return Mail(
        to=_contacts(record), subject=subject, body=body, application_id=record.application_id
    )


def reminder_mail(record: ApplicationRecord, reminder: ReminderDue) -> Mail:
    due = _when(reminder.due_at)
    return Mail(
        to=_contacts(record),
        subject=f"Reminder - {title_of(record)}: {stage_words(reminder.about)} ({due})",
        body=f"{reminder.message}\n\nDue: {due}\nApplication id: {record.application_id}"
        + SIGNATURE,
        application_id=record.application_id,
    )


def partner_request_mail(
    record: ApplicationRecord, link: PartnerLinkRecord, *, member_name: str, url: str
) -> Mail:
    draft = DraftFields.model_validate(record.draft)
    assert draft.exchange_start and draft.exchange_end
    title = title_of(record)
    others = [
        f"{partner.name} ({partner.country})"
        for partner in draft.every_partner()
        if partner.contact_email.lower() != link.partner_email.lower()
    ]
    # Each partner city answers for itself, through its own link.
    together = (
        f"The exchange also includes {', '.join(others)}, who are asked separately.\n\n"
        if others
        else ""
    )
    return Mail(
        to=(link.partner_email,),
        subject=f"Please confirm: exchange with {member_name} ({title})",
        body=(
            f"Dear colleagues in {link.partner_city},\n\n"
            f"{member_name} has applied for funding for an exchange with your city: "
            f'"{title}", from {draft.exchange_start.isoformat()} to '
            f"{draft.exchange_end.isoformat()}.\n\n"
            f"{together}"
            "Please confirm that your city takes part and hosts the exchange, or decline, "
            f"by {_when(link.due_at)}:\n\n  {url}\n\n"
            "The link works once. If you did not expect this message you can ignore it." + SIGNATURE
        ),
        application_id=record.application_id,
    )
