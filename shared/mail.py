"""Mail: the queue a use case writes into, the relay that sends it, and the mailers (SMTP in
production, ``.eml`` files in the embedded stack and tests)."""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.clock import utc_now
from shared.db import statement_by_statement
from shared.messaging.tables import MessagingTables
from shared.settings import CommonSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    subject: str
    body: str
    application_id: str | None = None


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None: ...


_UTF8_QUOTED_PRINTABLE = Charset("utf-8")
_UTF8_QUOTED_PRINTABLE.body_encoding = QP


def _message(mail: Mail, sender: str) -> Message:
    # The compat32 classes, not EmailMessage: its header registry parses every header
    # again, and building one message cost about 1.1 ms against 0.3 ms, on the same event
    # loop that answers requests. Plain ASCII stays readable as is; the rest is encoded.
    body_charset = "us-ascii" if mail.body.isascii() else _UTF8_QUOTED_PRINTABLE
    message = MIMEText(mail.body, "plain", body_charset)  # type: ignore[arg-type]
    message["From"] = sender
    message["To"] = ", ".join(mail.to)
    message["Subject"] = (
        mail.subject if mail.subject.isascii() else Header(mail.subject, "utf-8").encode()
    )
    message["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    if mail.application_id:
        message["X-Grantflow-Application"] = mail.application_id
    return message


class FileMailer:
    """Writes each message as an ``.eml`` file, readable by any mail client."""

    def __init__(self, directory: Path, sender: str = "grantflow@localhost") -> None:
        self.directory = directory
        self.sender = sender

    async def send(self, mail: Mail) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        slug = re.sub(r"[^a-z0-9]+", "-", mail.subject.lower()).strip("-")[:40]
        path = self.directory / f"{stamp}-{slug}.eml"
        await asyncio.to_thread(path.write_bytes, bytes(_message(mail, self.sender)))

    def sent(self) -> list[Path]:
        return sorted(self.directory.glob("*.eml")) if self.directory.exists() else []


class SmtpMailer:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls = username, password, starttls

    async def send(self, mail: Mail) -> None:
        await asyncio.to_thread(self._send, _message(mail, self.sender))

    def _send(self, message: Message) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=30) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username and self.password:
                smtp.login(self.username, self.password)
            smtp.send_message(message)


def create_mailer(settings: CommonSettings) -> Mailer:
    if settings.smtp_host:
        return SmtpMailer(settings.smtp_host, settings.smtp_port, settings.mail_sender)
    return FileMailer(settings.mail_dir, settings.mail_sender)


class MailQueue:
    """Mail written into the current transaction: it is sent only if the change commits."""

    def __init__(self, tables: MessagingTables) -> None:
        self._insert = tables.mail.insert()

    async def add(self, session: AsyncSession, mail: Mail, *, kind: str) -> None:
        if not mail.to:
            return
        await session.execute(
            self._insert,
            {
                "kind": kind[:60],
                "recipients": sorted(set(mail.to)),
                "subject": mail.subject[:300],
                "body": mail.body,
                "application_id": mail.application_id,
                "created_at": utc_now(),
            },
        )


class MailRelay:
    """Sends queued mail, polling: mail is not worth a wake-up on every commit.

    A failure is recorded and retried on a later round, up to ``max_attempts``; one bad
    address or an SMTP outage does not stop the rest.
    """

    def __init__(
        self,
        tables: MessagingTables,
        sessions: async_sessionmaker[AsyncSession],
        mailer: Mailer,
        *,
        poll_interval: float = 1.0,
        batch_size: int = 50,
        max_attempts: int = 10,
    ) -> None:
        table = self._table = tables.mail
        self._sessions = sessions
        self._mailer = mailer
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._queued = (
            select(table)
            .where(table.c.sent_at.is_(None), table.c.attempts < max_attempts)
            .order_by(table.c.id)
            .limit(batch_size)
        )
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
        async with statement_by_statement(self._sessions) as session:
            queued = (await session.execute(self._queued)).all()
        sent = 0
        for item in queued:
            mail = Mail(
                to=tuple(item.recipients),
                subject=item.subject,
                body=item.body,
                application_id=item.application_id,
            )
            try:
                await self._mailer.send(mail)
            except Exception as error:
                logger.warning("mail %s not sent: %r", item.id, error)
                values: dict[str, Any] = {
                    "attempts": self._table.c.attempts + 1,
                    "last_error": repr(error)[:2000],
                }
            else:
                sent += 1
                values = {"sent_at": utc_now(), "attempts": self._table.c.attempts + 1}
            async with statement_by_statement(self._sessions) as session:
                await session.execute(
                    update(self._table).where(self._table.c.id == item.id).values(**values)
                )
                await session.commit()
        self.sent_total += sent
        return sent
