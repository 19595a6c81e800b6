"""Tables of the intake service (migrated by services/intake/migrations) and every query."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    func,
    select,
    true,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from shared.messaging.tables import define_messaging_tables

metadata = MetaData()
messaging = define_messaging_tables(metadata, "intake")

_Id = BigInteger().with_variant(Integer(), "sqlite")
_When = DateTime(timezone=True)

members = Table(
    "intake_members",
    metadata,
    Column("member_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("state", String(100), nullable=True),
    Column("country", String(2), nullable=False),
    Column("contacts", JSON, nullable=False),
    Column("sister_cities", JSON, nullable=False),
    Column("membership_active", Boolean, nullable=False),
    Column("good_standing", Boolean, nullable=False),
    Column("standing_reason", String(40), nullable=True),
    Column("standing_changed_at", _When, nullable=True),
    Column("created_at", _When, nullable=False),
    Column("updated_at", _When, nullable=False),
)

exchange_rates = Table(
    "intake_exchange_rates",
    metadata,
    Column("from_currency", String(3), primary_key=True),
    Column("to_currency", String(3), primary_key=True),
    Column("rate", String(40), nullable=False),
    Column("updated_at", _When, nullable=False),
    Column("updated_by", String(120), nullable=False),
)

applications = Table(
    "intake_applications",
    metadata,
    Column("application_id", String(36), primary_key=True),
    Column("member_id", String(64), nullable=False),
    Column("program_code", String(40), nullable=True),
    Column("cycle", String(20), nullable=True),
    Column("title", String(200), nullable=True),
    Column("status", String(80), nullable=False),
    Column("status_sequence", Integer, nullable=False),
    # Set while the application is open: the unique index refuses a second open application
    # of one member for one program cycle, even when two submissions race.
    Column("open_key", String(200), nullable=True, unique=True),
    Column("draft", JSON, nullable=False),
    Column("draft_version", Integer, nullable=False),
    Column("snapshot", JSON, nullable=True),
    Column("catalog_version", String(40), nullable=True),
    Column("revision", Integer, nullable=False),
    Column("deadlines", JSON, nullable=False),
    Column("action_required", Text, nullable=True),
    Column("amounts", JSON, nullable=True),
    Column("awarded", Boolean, nullable=False),
    Column("withdrawal_requested_at", _When, nullable=True),
    Column("resubmitted_at_sequence", Integer, nullable=True),
    Column("created_at", _When, nullable=False),
    Column("updated_at", _When, nullable=False),
    Column("submitted_at", _When, nullable=True),
)
Index("ix_intake_applications_member", applications.c.member_id, applications.c.created_at)
Index("ix_intake_applications_status", applications.c.status)

status_history = Table(
    "intake_status_history",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("application_id", String(36), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("stage", String(80), nullable=False),
    Column("previous_stage", String(80), nullable=True),
    Column("reason", Text, nullable=True),
    Column("action_required", Text, nullable=True),
    Column("deadlines", JSON, nullable=False),
    Column("occurred_at", _When, nullable=False),
    Column("event_id", String(36), nullable=False),
    UniqueConstraint("application_id", "sequence", name="uq_intake_status_history_sequence"),
)

application_actions = Table(
    "intake_application_actions",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("application_id", String(36), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("occurred_at", _When, nullable=False),
)
Index("ix_intake_application_actions_app", application_actions.c.application_id)

idempotency_keys = Table(
    "intake_idempotency_keys",
    metadata,
    Column("scope", String(200), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", _When, nullable=False),
)

partner_links = Table(
    "intake_partner_links",
    metadata,
    Column("link_id", String(32), primary_key=True),
    Column("application_id", String(36), nullable=False),
    Column("command_id", String(200), nullable=False),
    Column("partner_city", String(200), nullable=False),
    Column("partner_email", String(254), nullable=False),
    Column("due_at", _When, nullable=False),
    Column("created_at", _When, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("answered_at", _When, nullable=True),
    Column("confirmed", Boolean, nullable=True),
    Column("note", Text, nullable=True),
    UniqueConstraint("application_id", "command_id", name="uq_intake_partner_links_command"),
)

notifications = Table(
    "intake_notifications",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("application_id", String(36), nullable=True),
    Column("kind", String(40), nullable=False),
    Column("recipients", JSON, nullable=False),
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", _When, nullable=False),
    Column("sent_at", _When, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
)
Index("ix_intake_notifications_unsent", notifications.c.sent_at, notifications.c.id)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; every stored time is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _record(row: Row[Any]) -> dict[str, Any]:
    return {
        key: aware(value) if isinstance(value, datetime) else value
        for key, value in row._mapping.items()
    }


# --- members --------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberRecord:
    member_id: str
    name: str
    state: str | None
    country: str
    contacts: list[dict[str, Any]]
    sister_cities: list[dict[str, Any]]
    membership_active: bool
    good_standing: bool
    standing_reason: str | None
    standing_changed_at: datetime | None
    created_at: datetime
    updated_at: datetime


_member_by_id = select(members).where(members.c.member_id == bindparam("member_id"))
_member_by_id_for_update = _member_by_id.with_for_update()


async def get_member(
    session: AsyncSession, member_id: str, *, for_update: bool = False
) -> MemberRecord | None:
    query = _member_by_id_for_update if for_update else _member_by_id
    row = (await session.execute(query, {"member_id": member_id})).first()
    return MemberRecord(**_record(row)) if row else None


async def list_members(
    session: AsyncSession, *, member_id: str | None, limit: int, offset: int
) -> tuple[list[MemberRecord], int]:
    condition = members.c.member_id == member_id if member_id is not None else true()
    total = await session.scalar(select(func.count()).select_from(members).where(condition))
    rows = await session.execute(
        select(members).where(condition).order_by(members.c.member_id).limit(limit).offset(offset)
    )
    return [MemberRecord(**_record(row)) for row in rows], int(total or 0)


async def insert_member(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(members.insert().values(**values))


async def update_member(session: AsyncSession, member_id: str, values: dict[str, Any]) -> None:
    await session.execute(update(members).where(members.c.member_id == member_id).values(**values))


# --- exchange rates -------------------------------------------------------------------


_rates_to = select(exchange_rates.c.from_currency, exchange_rates.c.rate).where(
    exchange_rates.c.to_currency == bindparam("to_currency"),
    exchange_rates.c.from_currency.in_(bindparam("from_currencies", expanding=True)),
)


async def rates_to(
    session: AsyncSession, to_currency: str, from_currencies: Iterable[str]
) -> dict[tuple[str, str], str]:
    wanted = sorted(set(from_currencies) - {to_currency})
    if not wanted:
        return {}
    rows = await session.execute(_rates_to, {"to_currency": to_currency, "from_currencies": wanted})
    return {(row.from_currency, to_currency): row.rate for row in rows}


async def list_rates(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(exchange_rates).order_by(
            exchange_rates.c.to_currency, exchange_rates.c.from_currency
        )
    )
    return [_record(row) for row in rows]


async def get_rate(
    session: AsyncSession, from_currency: str, to_currency: str
) -> dict[str, Any] | None:
    row = (
        await session.execute(
            select(exchange_rates).where(
                exchange_rates.c.from_currency == from_currency,
                exchange_rates.c.to_currency == to_currency,
            )
        )
    ).first()
    return _record(row) if row else None


async def save_rate(
    session: AsyncSession, from_currency: str, to_currency: str, rate: str, by: str, at: datetime
) -> None:
    values = {"rate": rate, "updated_at": at, "updated_by": by}
    if await get_rate(session, from_currency, to_currency) is None:
        await session.execute(
            exchange_rates.insert().values(
                from_currency=from_currency, to_currency=to_currency, **values
            )
        )
    else:
        await session.execute(
            update(exchange_rates)
            .where(
                exchange_rates.c.from_currency == from_currency,
                exchange_rates.c.to_currency == to_currency,
            )
            .values(**values)
        )


# --- applications ---------------------------------------------------------------------


@dataclass(frozen=True)
class ApplicationRecord:
    application_id: str
    member_id: str
    program_code: str | None
    cycle: str | None
    title: str | None
    status: str
    status_sequence: int
    open_key: str | None
    draft: dict[str, Any]
    draft_version: int
    snapshot: dict[str, Any] | None
    catalog_version: str | None
    revision: int
    deadlines: list[dict[str, Any]]
    action_required: str | None
    amounts: dict[str, Any] | None
    awarded: bool
    withdrawal_requested_at: datetime | None
    resubmitted_at_sequence: int | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None


async def insert_application(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(applications.insert().values(**values))


# The statements on the submission path are built once with their values as parameters:
# SQLAlchemy then finds them compiled in its cache, where building one per call (with
# .values() or literal comparisons) costs as much Python time as the round trip itself.
_application_by_id = select(applications).where(
    applications.c.application_id == bindparam("application_id")
)
_application_by_id_for_update = _application_by_id.with_for_update()
# The SET clause follows the keys of the parameters given.
_update_application = update(applications).where(
    applications.c.application_id == bindparam("target_application_id")
)


async def get_application(
    session: AsyncSession, application_id: str, *, for_update: bool = False
) -> ApplicationRecord | None:
    query = _application_by_id_for_update if for_update else _application_by_id
    row = (await session.execute(query, {"application_id": application_id})).first()
    return ApplicationRecord(**_record(row)) if row else None


async def update_application(
    session: AsyncSession, application_id: str, values: dict[str, Any]
) -> None:
    await session.execute(_update_application, {**values, "target_application_id": application_id})


async def list_applications(
    session: AsyncSession,
    *,
    member_id: str | None,
    program_code: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[ApplicationRecord], int]:
    conditions = []
    if member_id is not None:
        conditions.append(applications.c.member_id == member_id)
    if program_code is not None:
        conditions.append(applications.c.program_code == program_code)
    if status is not None:
        conditions.append(applications.c.status == status)
    where = and_(True, *conditions)
    total = await session.scalar(select(func.count()).select_from(applications).where(where))
    rows = await session.execute(
        select(applications)
        .where(where)
        .order_by(applications.c.created_at.desc(), applications.c.application_id)
        .limit(limit)
        .offset(offset)
    )
    return [ApplicationRecord(**_record(row)) for row in rows], int(total or 0)


async def open_application_id(session: AsyncSession, key: str) -> str | None:
    found = await session.scalar(
        select(applications.c.application_id).where(applications.c.open_key == key)
    )
    return str(found) if found is not None else None


# --- status history and applicant actions ---------------------------------------------


async def has_status(session: AsyncSession, application_id: str, sequence: int) -> bool:
    found = await session.scalar(
        select(status_history.c.id).where(
            status_history.c.application_id == application_id,
            status_history.c.sequence == sequence,
        )
    )
    return found is not None


async def insert_status(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(status_history.insert().values(**values))


async def list_status_history(session: AsyncSession, application_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(status_history)
        .where(status_history.c.application_id == application_id)
        .order_by(status_history.c.sequence)
    )
    return [_record(row) for row in rows]


_insert_action = application_actions.insert()
_actions_of_application = (
    select(application_actions)
    .where(application_actions.c.application_id == bindparam("application_id"))
    .order_by(application_actions.c.id)
)


async def add_action(
    session: AsyncSession,
    application_id: str,
    kind: str,
    actor: str,
    detail: dict[str, Any],
    at: datetime,
) -> None:
    await session.execute(
        _insert_action,
        {
            "application_id": application_id,
            "kind": kind,
            "actor": actor,
            "detail": detail,
            "occurred_at": at,
        },
    )


async def list_actions(session: AsyncSession, application_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(_actions_of_application, {"application_id": application_id})
    return [_record(row) for row in rows]


# --- idempotency keys -----------------------------------------------------------------


_idempotency_key = select(idempotency_keys).where(
    idempotency_keys.c.scope == bindparam("scope"), idempotency_keys.c.key == bindparam("key")
)
_insert_idempotency_key = idempotency_keys.insert()


async def get_idempotency_key(session: AsyncSession, scope: str, key: str) -> dict[str, Any] | None:
    row = (await session.execute(_idempotency_key, {"scope": scope, "key": key})).first()
    return _record(row) if row else None


async def save_idempotency_key(
    session: AsyncSession,
    scope: str,
    key: str,
    fingerprint: str,
    status_code: int,
    response: dict[str, Any],
    at: datetime,
) -> None:
    await session.execute(
        _insert_idempotency_key,
        {
            "scope": scope,
            "key": key,
            "fingerprint": fingerprint,
            "status_code": status_code,
            "response": response,
            "created_at": at,
        },
    )


# --- partner links --------------------------------------------------------------------


async def get_partner_link(
    session: AsyncSession, link_id: str, *, for_update: bool = False
) -> dict[str, Any] | None:
    query = select(partner_links).where(partner_links.c.link_id == link_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return _record(row) if row else None


async def partner_link_for_command(
    session: AsyncSession, application_id: str, command_id: str
) -> dict[str, Any] | None:
    row = (
        await session.execute(
            select(partner_links).where(
                partner_links.c.application_id == application_id,
                partner_links.c.command_id == command_id,
            )
        )
    ).first()
    return _record(row) if row else None


async def insert_partner_link(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(partner_links.insert().values(**values))


async def count_partner_link_request(session: AsyncSession, link_id: str) -> None:
    await session.execute(
        update(partner_links)
        .where(partner_links.c.link_id == link_id)
        .values(requests=partner_links.c.requests + 1)
    )


async def answer_partner_link(
    session: AsyncSession, link_id: str, confirmed: bool, note: str | None, at: datetime
) -> bool:
    """Record the answer once; False when the link was answered already."""
    result = await session.execute(
        update(partner_links)
        .where(partner_links.c.link_id == link_id, partner_links.c.answered_at.is_(None))
        .values(answered_at=at, confirmed=confirmed, note=note)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


# --- notifications (a mail outbox) ----------------------------------------------------


_insert_notification = notifications.insert()


async def queue_notification(
    session: AsyncSession,
    *,
    application_id: str | None,
    kind: str,
    recipients: list[str],
    subject: str,
    body: str,
    at: datetime,
) -> None:
    await session.execute(
        _insert_notification,
        {
            "application_id": application_id,
            "kind": kind,
            "recipients": recipients,
            "subject": subject,
            "body": body,
            "created_at": at,
            "attempts": 0,
        },
    )


async def unsent_notifications(
    session: AsyncSession, limit: int, max_attempts: int
) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(notifications)
        .where(notifications.c.sent_at.is_(None), notifications.c.attempts < max_attempts)
        .order_by(notifications.c.id)
        .limit(limit)
    )
    return [_record(row) for row in rows]


async def mark_notifications_sent(
    session: AsyncSession, notification_ids: list[int], at: datetime
) -> None:
    await session.execute(
        update(notifications).where(notifications.c.id.in_(notification_ids)).values(sent_at=at)
    )


async def mark_notification_failed(session: AsyncSession, notification_id: int, error: str) -> None:
    await session.execute(
        update(notifications)
        .where(notifications.c.id == notification_id)
        .values(attempts=notifications.c.attempts + 1, last_error=error[:2000])
    )


async def list_notifications(
    session: AsyncSession, application_id: str | None = None
) -> list[dict[str, Any]]:
    query = select(notifications).order_by(notifications.c.id)
    if application_id is not None:
        query = query.where(notifications.c.application_id == application_id)
    return [_record(row) for row in await session.execute(query)]
