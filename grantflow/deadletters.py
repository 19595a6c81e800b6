"""``grantflow dlq``: the dead letters of every service, to read and to replay.

Each service keeps what its consumers gave up on in its own table,
``<service>_dead_letters`` (``shared.messaging.deadletter``), in its own database, read
here through the service's settings. A dead letter is named ``<service>:<n>``.

A replay puts the original message back on its original topic through the service's
outbox, in the transaction that marks the dead letter replayed; the service's relay
publishes it (the service must be running, as for any event it publishes). The outbox
row gets an event id of its own, while the message keeps its envelope and event id: every
consumer's inbox processes it at most once, so a consumer that had processed it already
(another service on the same topic, or a replay repeated with ``--again``) drops it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import import_module
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from sqlalchemy import Row, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from grantflow.services import SETTINGS_BY_SERVICE
from shared.clock import utc_now
from shared.contracts.topics import DEAD_LETTER_SUFFIX
from shared.db import create_engine, create_session_factory, is_sqlite
from shared.messaging.outbox import Outbox
from shared.messaging.tables import MessagingTables
from shared.migrations import MIGRATED_SERVICES, persistence_module
from shared.settings import ServiceSettings

SERVICES: Final = MIGRATED_SERVICES
# Names the dead letter a replayed message came from, for whoever reads the topic.
REPLAY_HEADER: Final = "dlq_replay_of"
REASON_WIDTH: Final = 100
# Bytes that are mostly not text are shown as base64 rather than as replacement characters.
MOSTLY_TEXT: Final = 0.8


class DeadLetterError(Exception):
    """What an operator is told when a dead letter cannot be found, read or replayed."""


@dataclass(frozen=True)
class LetterId:
    service: str
    number: int

    @classmethod
    def parse(cls, text: str) -> LetterId:
        service, colon, number = text.strip().partition(":")
        if not colon or service not in SERVICES or not number.isdigit():
            raise DeadLetterError(
                f"{text!r} is not a dead letter's id: <service>:<number>, e.g. review:12, "
                f"with a service among {', '.join(SERVICES)}"
            )
        return cls(service, int(number))

    def __str__(self) -> str:
        return f"{self.service}:{self.number}"


@dataclass(frozen=True)
class DeadLetter:
    id: LetterId
    topic: str
    partition: int
    offset: int
    key: str | None
    consumer_group: str | None
    reason: str
    attempts: int
    headers: dict[str, str]
    body: bytes
    event_id: str | None
    dead_lettered_at: datetime
    replayed_at: datetime | None
    replays: int

    @classmethod
    def of(cls, service: str, row: Row[Any]) -> DeadLetter:
        return cls(
            id=LetterId(service, int(row.id)),
            topic=row.topic,
            partition=int(row.partition),
            offset=int(row.offset),
            key=row.message_key,
            consumer_group=row.consumer_group,
            reason=row.reason,
            attempts=int(row.attempts),
            headers=_headers(row.headers),
            body=_original_bytes(row.body_base64),
            event_id=row.event_id,
            dead_lettered_at=row.dead_lettered_at,
            replayed_at=row.replayed_at,
            replays=int(row.replays),
        )


def _headers(text: str) -> dict[str, str]:
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _original_bytes(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text.encode()


def _missing_sqlite_file(url: str) -> str | None:
    # Opening a SQLite file that is not there would create an empty one.
    if not is_sqlite(url):
        return None
    path = make_url(url).database
    if not path or path == ":memory:" or Path(path).exists():
        return None
    return path


class DeadLetterBook:
    """One service's dead letters, in its own database: ``async with`` opens it."""

    def __init__(self, service: str, settings: ServiceSettings) -> None:
        self.service = service
        self.settings = settings
        module = import_module(persistence_module(service))
        self.tables: MessagingTables = module.messaging
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    @classmethod
    def of(cls, service: str) -> DeadLetterBook:
        """The book of ``service`` as its settings (the environment) say."""
        return cls(service, SETTINGS_BY_SERVICE[service]())

    @property
    def database(self) -> str:
        url = self.settings.effective_database_url()
        return make_url(url).render_as_string(hide_password=True)

    async def __aenter__(self) -> DeadLetterBook:
        url = self.settings.effective_database_url()
        missing = _missing_sqlite_file(url)
        if missing is not None:
            raise DeadLetterError(
                f"{self.service}: no database at {missing} (has it run with these settings?)"
            )
        self._engine = create_engine(url)
        self._sessions = create_session_factory(self._engine)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._engine is not None:
            await self._engine.dispose()
        self._engine = self._sessions = None

    def _session(self) -> AsyncSession:
        if self._sessions is None:
            raise RuntimeError("open the book with 'async with' first")
        return self._sessions()

    def _unreadable(self, error: SQLAlchemyError | OSError) -> DeadLetterError:
        lines = str(getattr(error, "orig", None) or error).strip().splitlines()
        detail = lines[0] if lines else repr(error)
        return DeadLetterError(
            f"{self.service}: cannot use {self.tables.dead_letters.name} in {self.database}: "
            f"{detail} (migrated? 'grantflow db upgrade {self.service}')"
        )

    def topic_names(self, topic: str) -> set[str]:
        """The broker names an operator may mean by ``topic``, with or without prefix."""
        topic = topic.removesuffix(DEAD_LETTER_SUFFIX)
        return {topic, f"{self.settings.topic_prefix}{topic}"}

    async def letters(
        self,
        *,
        topic: str | None = None,
        since: datetime | None = None,
        include_replayed: bool = False,
    ) -> list[DeadLetter]:
        table = self.tables.dead_letters
        query = select(table).order_by(table.c.id)
        if topic is not None:
            query = query.where(table.c.topic.in_(self.topic_names(topic)))
        if since is not None:
            query = query.where(table.c.dead_lettered_at >= since)
        if not include_replayed:
            query = query.where(table.c.replayed_at.is_(None))
        try:
            async with self._session() as session:
                rows = (await session.execute(query)).all()
        except (SQLAlchemyError, OSError) as error:
            raise self._unreadable(error) from error
        return [DeadLetter.of(self.service, row) for row in rows]

    async def letter(self, number: int) -> DeadLetter:
        table = self.tables.dead_letters
        try:
            async with self._session() as session:
                row = (await session.execute(select(table).where(table.c.id == number))).first()
        except (SQLAlchemyError, OSError) as error:
            raise self._unreadable(error) from error
        if row is None:
            raise DeadLetterError(f"no dead letter {self.service}:{number}")
        return DeadLetter.of(self.service, row)

    async def replay(self, letter: DeadLetter, *, again: bool = False) -> str:
        """Put ``letter`` back on its topic through the outbox; the outbox row's event id."""
        try:
            body = letter.body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DeadLetterError(
                f"{letter.id} cannot be replayed: its body is not UTF-8 text ({error}), "
                "and no consumer could read it either"
            ) from error
        row_event_id = str(uuid.uuid4())
        outbox = Outbox(self.tables, self.settings.topic_prefix)
        try:
            async with self._session() as session, session.begin():
                await self._mark_replayed(session, letter, again=again)
                await outbox.add_raw(
                    session,
                    event_id=row_event_id,
                    topic=letter.topic,
                    key=letter.key or "",
                    body=body,
                    headers={**letter.headers, REPLAY_HEADER: str(letter.id)},
                )
        except (SQLAlchemyError, OSError) as error:
            raise self._unreadable(error) from error
        return row_event_id

    async def mark_replayed(self, letter: DeadLetter, *, again: bool = False) -> None:
        """Record a replay that another service's dead letter of the same message made."""
        try:
            async with self._session() as session, session.begin():
                await self._mark_replayed(session, letter, again=again)
        except (SQLAlchemyError, OSError) as error:
            raise self._unreadable(error) from error

    async def _mark_replayed(
        self, session: AsyncSession, letter: DeadLetter, *, again: bool
    ) -> None:
        if letter.replayed_at is not None and not again:
            raise DeadLetterError(
                f"{letter.id} was replayed at {moment(letter.replayed_at)}; "
                "give --again to replay it once more"
            )
        table = self.tables.dead_letters
        which = table.c.id == letter.id.number
        if not again:
            which &= table.c.replayed_at.is_(None)
        marked = await session.execute(
            update(table).where(which).values(replayed_at=utc_now(), replays=table.c.replays + 1)
        )
        if not marked.rowcount:  # type: ignore[attr-defined]
            raise DeadLetterError(f"{letter.id} was replayed meanwhile by someone else")


# -- what the commands do, over every service ----------------------------------------


async def find_letters(
    services: tuple[str, ...],
    *,
    topic: str | None = None,
    since: datetime | None = None,
    include_replayed: bool = False,
) -> tuple[list[DeadLetter], list[str]]:
    """The dead letters of ``services``, oldest first, and why a service could not be read."""
    found: list[DeadLetter] = []
    problems: list[str] = []
    for service in services:
        try:
            async with DeadLetterBook.of(service) as book:
                found += await book.letters(
                    topic=topic, since=since, include_replayed=include_replayed
                )
        except DeadLetterError as error:
            problems.append(str(error))
    found.sort(key=lambda letter: (letter.dead_lettered_at, letter.id.service, letter.id.number))
    return found, problems


async def find_letter(letter_id: LetterId) -> DeadLetter:
    async with DeadLetterBook.of(letter_id.service) as book:
        return await book.letter(letter_id.number)


async def replay_letter(letter_id: LetterId, *, again: bool = False) -> Replay:
    async with DeadLetterBook.of(letter_id.service) as book:
        letter = await book.letter(letter_id.number)
        return Replay(letter, letter.id, await book.replay(letter, again=again))


@dataclass(frozen=True)
class Replay:
    """A dead letter replayed: ``via`` put the message back (itself, or another service's
    dead letter of the same message, since one copy on the topic reaches every consumer)."""

    letter: DeadLetter
    via: LetterId
    outbox_row: str


async def replay_topic(
    services: tuple[str, ...], topic: str, *, again: bool = False
) -> tuple[list[Replay], list[str]]:
    """Replay every dead letter of ``topic`` (not yet replayed, unless ``again``), in order.

    A message that several services dead-lettered goes back once; each of its dead
    letters is marked replayed.
    """
    replays: list[Replay] = []
    problems: list[str] = []
    async with contextlib.AsyncExitStack() as opened:
        books: dict[str, DeadLetterBook] = {}
        letters: list[DeadLetter] = []
        for service in services:
            try:
                book = await opened.enter_async_context(DeadLetterBook.of(service))
                letters += await book.letters(topic=topic, include_replayed=again)
            except DeadLetterError as error:
                problems.append(str(error))
                continue
            books[service] = book
        letters.sort(key=lambda letter: (letter.dead_lettered_at, letter.id.service))
        same_message: dict[tuple[str, bytes], list[DeadLetter]] = {}
        for letter in letters:
            same_message.setdefault((letter.topic, letter.body), []).append(letter)
        for first, *others in same_message.values():
            try:
                row = await books[first.id.service].replay(first, again=again)
                replays.append(Replay(first, first.id, row))
                for other in others:
                    await books[other.id.service].mark_replayed(other, again=again)
                    replays.append(Replay(other, first.id, row))
            except DeadLetterError as error:  # one that cannot go holds back no other
                problems.append(str(error))
    return replays, problems


# -- how they are shown ---------------------------------------------------------------


def moment(when: datetime) -> str:
    """UTC, in the form ``--since`` takes."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_moment(text: str) -> datetime:
    """ISO 8601 (a date, or a date and time); UTC unless it names an offset."""
    when = datetime.fromisoformat(text.strip())
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def list_line(letter: DeadLetter, id_width: int = 0) -> str:
    reason = " ".join(letter.reason.split())
    if len(reason) > REASON_WIDTH:
        reason = reason[: REASON_WIDTH - 3] + "..."
    replayed = f"  [replayed {letter.replays}x]" if letter.replays else ""
    return (
        f"{letter.id!s:<{id_width}}  {moment(letter.dead_lettered_at)}  {letter.topic}  "
        f"attempts {letter.attempts}{replayed}  {reason}"
    )


def decoded_body(body: bytes) -> tuple[str, str]:
    """How to show the original bytes: (``JSON``, pretty), (``text``, text) or (``base64``, ...)."""
    text = body.decode("utf-8", errors="replace")
    try:
        return "JSON", json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    readable = sum(
        1 for char in text if char != "\ufffd" and (char.isprintable() or char in "\n\r\t")
    )
    if not text or readable / len(text) >= MOSTLY_TEXT:
        return "text", text
    return "base64", base64.b64encode(body).decode()


def describe(letter: DeadLetter) -> str:
    replayed = (
        f"{moment(letter.replayed_at)} ({letter.replays} time{'s' if letter.replays != 1 else ''})"
        if letter.replayed_at is not None
        else "not yet"
    )
    facts = [
        ("topic", letter.topic),
        ("position", f"partition {letter.partition}, offset {letter.offset}"),
        ("key", letter.key or "(none)"),
        ("event id", letter.event_id or "(none)"),
        ("consumer group", letter.consumer_group or "(unknown)"),
        ("dead-lettered", moment(letter.dead_lettered_at)),
        ("attempts", str(letter.attempts)),
        ("replayed", replayed),
        ("reason", letter.reason),
    ]
    width = max(len(label) for label, _ in facts)
    lines = [f"dead letter {letter.id}"]
    lines += [f"  {label:<{width}}  {value}" for label, value in facts]
    lines.append("headers")
    lines += [f"  {name}: {value}" for name, value in letter.headers.items()] or ["  (none)"]
    kind, text = decoded_body(letter.body)
    lines.append(f"message ({len(letter.body)} bytes, shown as {kind})")
    lines += [f"  {line}" for line in text.splitlines()] or ["  (empty)"]
    return "\n".join(lines)
