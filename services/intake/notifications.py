"""Mail to applicants and partners: the texts, and the relay that sends queued mail.

A use case queues a message in ``intake_notifications`` in the same transaction as the
state change that causes it; the relay sends queued messages through the shared mailer
and marks them sent. A crash between the two sends a message twice rather than never.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake import persistence as db
from services.intake.domain import stage_words
from shared.contracts.money import Money
from shared.mail import Mail, Mailer

logger = logging.getLogger(__name__)

SIGNATURE = "\n\n-- \ngrantflow, the sister-city exchange-funding service\n"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _deadline_lines(deadlines: Sequence[dict[str, Any]]) -> str:
    if not deadlines:
        return ""
    lines = "\n".join(
        f"  - {stage_words(str(item['name']))}: "
        f"{_when(datetime.fromisoformat(str(item['due_at'])))}"
        for item in deadlines
    )
    return f"\n\nDeadlines ahead:\n{lines}"


def submitted_mail(title: str, program: str, application_id: str, requested: Money) -> Mail:
    return Mail(
        to=(),
        subject=f"Application received: {title}",
        body=(
            f'We received your application to {program}, "{title}", requesting {requested}.\n'
            f"Application id: {application_id}\n\n"
            "We will write again at each step: screening, your partner's confirmation, "
            "review and the decision." + SIGNATURE
        ),
        application_id=application_id,
    )


def status_mail(
    *,
    application_id: str,
    title: str,
    stage: str,
    reason: str | None,
    action_required: str | None,
    deadlines: Sequence[dict[str, Any]],
) -> Mail:
    subject = f"{title}: {stage_words(stage)}"
    if action_required:
        subject = f"Action required - {subject}"
    body = f'Your application "{title}" is now: {stage_words(stage)}.'
    if reason:
        body += f"\nReason: {reason}"
    if action_required:
        body += f"\n\nWhat you need to do: {action_required}"
    body += _deadline_lines(deadlines)
    body += f"\n\nApplication id: {application_id}" + SIGNATURE
    return Mail(to=(), subject=subject, body=body, application_id=application_id)


def reminder_mail(
    *, application_id: str, title: str, about: str, due_at: datetime, message: str
) -> Mail:
    return Mail(
        to=(),
        subject=f"Reminder - {title}: {stage_words(about)} ({_when(due_at)})",
        body=f"{message}\n\nDue: {_when(due_at)}\nApplication id: {application_id}" + SIGNATURE,
        application_id=application_id,
    )


def partner_request_mail(
    *,
    application_id: str,
    partner_city: str,
    member_name: str,
    title: str,
    exchange_start: date,
    exchange_end: date,
    link: str,
    due_at: datetime,
) -> Mail:
    return Mail(
        to=(),
        subject=f"Please confirm: exchange with {member_name} ({title})",
        body=(
            f"Dear colleagues in {partner_city},\n\n"
            f"{member_name} has applied for funding for an exchange with your city: "
            f'"{title}", from {exchange_start.isoformat()} to {exchange_end.isoformat()}.\n\n'
            "Please confirm that your city takes part and hosts the exchange, or decline, "
            f"by {_when(due_at)}:\n\n  {link}\n\n"
            "The link works once. If you did not expect this message you can ignore it." + SIGNATURE
        ),
        application_id=application_id,
    )


class NotificationRelay:
    """Sends queued mail, polling: mail is not worth a wake-up on every commit."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        mailer: Mailer,
        *,
        poll_interval: float = 1.0,
        batch_size: int = 50,
        max_attempts: int = 10,
    ) -> None:
        self._sessions = sessions
        self._mailer = mailer
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self.sent_total = 0

    async def run(self) -> None:
        while True:
            try:
                sent = await self.send_pending()
            except Exception:  # the database is away: try again later
                logger.exception("could not send queued mail")
                sent = 0
            if sent < self._batch_size:
                await asyncio.sleep(self._poll_interval)

    async def send_pending(self) -> int:
        async with self._sessions() as session:
            queued = await db.unsent_notifications(session, self._batch_size, self._max_attempts)
        sent: list[int] = []
        try:
            for item in queued:
                mail = Mail(
                    to=tuple(item["recipients"]),
                    subject=item["subject"],
                    body=item["body"],
                    application_id=item["application_id"],
                )
                try:
                    await self._mailer.send(mail)
                except Exception as error:
                    logger.warning("mail %s not sent: %r", item["id"], error)
                    async with self._sessions() as session, session.begin():
                        await db.mark_notification_failed(session, item["id"], repr(error))
                    continue
                sent.append(item["id"])
        finally:
            if sent:
                async with self._sessions() as session, session.begin():
                    await db.mark_notifications_sent(session, sent, datetime.now(UTC))
        self.sent_total += len(sent)
        return len(sent)
