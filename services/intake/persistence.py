"""Tables of the intake service (migrated by services/intake/migrations) and every query.

``IntakeStore`` holds the queries of one unit of work. The statements on the submission
path are built once with their values as parameters: SQLAlchemy then finds them compiled
in its cache, where building one per call (with ``.values()`` or literal comparisons)
costs as much Python time as the round trip itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    select,
    update,
)

from shared.contracts.base import stores
from shared.contracts.intake import ApplicationSubmitted
from shared.db import Id, UtcDateTime
from shared.messaging.tables import define_messaging_tables
from shared.persistence import Store, set_in_filter

metadata = MetaData()
messaging = define_messaging_tables(metadata, "intake")

members = Table(
    "intake_members",
    metadata,
    Column("member_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, info=stores(ApplicationSubmitted, "member_name")),
    Column("state", String(100), nullable=True),
    Column("country", String(2), nullable=False),
    Column("contacts", JSON, nullable=False),
    Column("sister_cities", JSON, nullable=False),
    Column("membership_active", Boolean, nullable=False),
    Column("good_standing", Boolean, nullable=False),
    Column("standing_reason", String(40), nullable=True),
    Column("standing_changed_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

exchange_rates = Table(
    "intake_exchange_rates",
    metadata,
    Column("from_currency", String(3), primary_key=True),
    Column("to_currency", String(3), primary_key=True),
    Column("rate", String(40), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("updated_by", String(120), nullable=False),
)

applications = Table(
    "intake_applications",
    metadata,
    Column("application_id", String(64), primary_key=True),
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
    Column("withdrawal_requested_at", UtcDateTime, nullable=True),
    Column("resubmitted_at_sequence", Integer, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("submitted_at", UtcDateTime, nullable=True),
)
Index("ix_intake_applications_member", applications.c.member_id, applications.c.created_at)
Index("ix_intake_applications_status", applications.c.status)

status_history = Table(
    "intake_status_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("application_id", String(64), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("stage", String(80), nullable=False),
    Column("previous_stage", String(80), nullable=True),
    Column("reason", Text, nullable=True),
    Column("action_required", Text, nullable=True),
    Column("deadlines", JSON, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("event_id", String(36), nullable=False),
    UniqueConstraint("application_id", "sequence", name="uq_intake_status_history_sequence"),
)

application_actions = Table(
    "intake_application_actions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("application_id", String(64), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
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
    Column("created_at", UtcDateTime, nullable=False),
)

partner_links = Table(
    "intake_partner_links",
    metadata,
    Column("link_id", String(32), primary_key=True),
    Column("application_id", String(64), nullable=False),
    Column("command_id", String(200), nullable=False),
    Column("partner_city", String(200), nullable=False),
    Column("partner_email", String(254), nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("answered_at", UtcDateTime, nullable=True),
    Column("confirmed", Boolean, nullable=True),
    Column("note", Text, nullable=True),
    # The subject the request's receipt has, which the answer is filed under; null for a
    # link made when every partner request of an application had one subject.
    Column("subject", String(200), nullable=True),
    UniqueConstraint("application_id", "command_id", name="uq_intake_partner_links_command"),
)


# --- records --------------------------------------------------------------------------


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


@dataclass(frozen=True)
class RateRecord:
    from_currency: str
    to_currency: str
    rate: str
    updated_at: datetime
    updated_by: str


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


@dataclass(frozen=True)
class StatusRecord:
    id: int
    application_id: str
    sequence: int
    stage: str
    previous_stage: str | None
    reason: str | None
    action_required: str | None
    deadlines: list[dict[str, Any]]
    occurred_at: datetime
    event_id: str


@dataclass(frozen=True)
class ActionRecord:
    id: int
    application_id: str
    kind: str
    actor: str
    detail: dict[str, Any]
    occurred_at: datetime


@dataclass(frozen=True)
class StoredAnswer:
    """The first answer to a request with an Idempotency-Key."""

    scope: str
    key: str
    fingerprint: str
    status_code: int
    response: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class PartnerLinkRecord:
    link_id: str
    application_id: str
    command_id: str
    partner_city: str
    partner_email: str
    due_at: datetime
    created_at: datetime
    answered_at: datetime | None
    confirmed: bool | None
    note: str | None
    subject: str | None = None


# --- statements built once ------------------------------------------------------------

_member_by_id = select(members).where(members.c.member_id == bindparam("member_id"))
_member_by_id_for_update = _member_by_id.with_for_update()
_rates_to = select(exchange_rates.c.from_currency, exchange_rates.c.rate).where(
    exchange_rates.c.to_currency == bindparam("to_currency"),
    exchange_rates.c.from_currency.in_(bindparam("from_currencies", expanding=True)),
)
_application_by_id = select(applications).where(
    applications.c.application_id == bindparam("application_id")
)
_application_by_id_for_update = _application_by_id.with_for_update()
# The SET clause follows the keys of the parameters given.
_update_application = update(applications).where(
    applications.c.application_id == bindparam("target_application_id")
)
_insert_action = application_actions.insert()
_actions_of_application = (
    select(application_actions)
    .where(application_actions.c.application_id == bindparam("application_id"))
    .order_by(application_actions.c.id)
)
_stored_answer = select(idempotency_keys).where(
    idempotency_keys.c.scope == bindparam("scope"), idempotency_keys.c.key == bindparam("key")
)
_insert_answer = idempotency_keys.insert()


class IntakeStore(Store):
    """The queries of one unit of work."""

    # Members -----------------------------------------------------------------------------

    async def member(self, member_id: str, *, for_update: bool = False) -> MemberRecord | None:
        query = _member_by_id_for_update if for_update else _member_by_id
        row = await self._one(query, {"member_id": member_id})
        return MemberRecord(**row._mapping) if row else None

    async def members(
        self, *, member_id: str | None, limit: int, offset: int
    ) -> tuple[list[MemberRecord], int]:
        where = set_in_filter((members.c.member_id, member_id))
        rows, total = await self._page(
            members, *where, order_by=[members.c.member_id], limit=limit, offset=offset
        )
        return [MemberRecord(**row._mapping) for row in rows], total

    async def insert_member(self, values: dict[str, Any]) -> None:
        await self.session.execute(members.insert().values(**values))

    async def update_member(self, member_id: str, values: dict[str, Any]) -> None:
        await self.session.execute(
            update(members).where(members.c.member_id == member_id).values(**values)
        )

    # Exchange rates ------------------------------------------------------------------------

    async def rates_to(
        self, to_currency: str, from_currencies: Iterable[str]
    ) -> dict[tuple[str, str], str]:
        wanted = sorted(set(from_currencies) - {to_currency})
        if not wanted:
            return {}
        rows = await self.session.execute(
            _rates_to, {"to_currency": to_currency, "from_currencies": wanted}
        )
        return {(row.from_currency, to_currency): row.rate for row in rows}

    async def rates(self, *, limit: int, offset: int) -> tuple[list[RateRecord], int]:
        rows, total = await self._page(
            exchange_rates,
            order_by=[exchange_rates.c.to_currency, exchange_rates.c.from_currency],
            limit=limit,
            offset=offset,
        )
        return [RateRecord(**row._mapping) for row in rows], total

    async def rate(self, from_currency: str, to_currency: str) -> RateRecord | None:
        row = await self._one(
            select(exchange_rates).where(
                exchange_rates.c.from_currency == from_currency,
                exchange_rates.c.to_currency == to_currency,
            )
        )
        return RateRecord(**row._mapping) if row else None

    async def save_rate(self, rate: RateRecord) -> None:
        await self._upsert(
            exchange_rates,
            {"from_currency": rate.from_currency, "to_currency": rate.to_currency},
            {"rate": rate.rate, "updated_at": rate.updated_at, "updated_by": rate.updated_by},
        )

    # Applications --------------------------------------------------------------------------

    async def insert_application(self, values: dict[str, Any]) -> None:
        await self.session.execute(applications.insert().values(**values))

    async def application(
        self, application_id: str, *, for_update: bool = False
    ) -> ApplicationRecord | None:
        query = _application_by_id_for_update if for_update else _application_by_id
        row = await self._one(query, {"application_id": application_id})
        return ApplicationRecord(**row._mapping) if row else None

    async def update_application(self, application_id: str, values: dict[str, Any]) -> None:
        await self.session.execute(
            _update_application, {**values, "target_application_id": application_id}
        )

    async def applications(
        self,
        *,
        member_id: str | None,
        program_code: str | None,
        status: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[ApplicationRecord], int]:
        conditions = set_in_filter(
            (applications.c.member_id, member_id),
            (applications.c.program_code, program_code),
            (applications.c.status, status),
        )
        rows, total = await self._page(
            applications,
            *conditions,
            order_by=[applications.c.created_at.desc(), applications.c.application_id],
            limit=limit,
            offset=offset,
        )
        return [ApplicationRecord(**row._mapping) for row in rows], total

    async def open_application_id(self, key: str) -> str | None:
        found = await self.session.scalar(
            select(applications.c.application_id).where(applications.c.open_key == key)
        )
        return str(found) if found is not None else None

    # Status history and the applicant's actions --------------------------------------------

    async def has_status(self, application_id: str, sequence: int) -> bool:
        found = await self.session.scalar(
            select(status_history.c.id).where(
                status_history.c.application_id == application_id,
                status_history.c.sequence == sequence,
            )
        )
        return found is not None

    async def insert_status(self, values: dict[str, Any]) -> None:
        await self.session.execute(status_history.insert().values(**values))

    async def status_history(self, application_id: str) -> list[StatusRecord]:
        rows = await self.session.execute(
            select(status_history)
            .where(status_history.c.application_id == application_id)
            .order_by(status_history.c.sequence)
        )
        return [StatusRecord(**row._mapping) for row in rows]

    async def add_action(
        self,
        application_id: str,
        kind: str,
        actor: str,
        detail: dict[str, Any],
        at: datetime,
    ) -> None:
        await self.session.execute(
            _insert_action,
            {
                "application_id": application_id,
                "kind": kind,
                "actor": actor,
                "detail": detail,
                "occurred_at": at,
            },
        )

    async def actions(self, application_id: str) -> list[ActionRecord]:
        rows = await self.session.execute(
            _actions_of_application, {"application_id": application_id}
        )
        return [ActionRecord(**row._mapping) for row in rows]

    # Idempotency keys ----------------------------------------------------------------------

    async def stored_answer(self, scope: str, key: str) -> StoredAnswer | None:
        row = await self._one(_stored_answer, {"scope": scope, "key": key})
        return StoredAnswer(**row._mapping) if row else None

    async def store_answer(self, answer: StoredAnswer) -> None:
        await self.session.execute(_insert_answer, vars(answer))

    # Partner links -------------------------------------------------------------------------

    async def partner_link(
        self, link_id: str, *, for_update: bool = False
    ) -> PartnerLinkRecord | None:
        query = select(partner_links).where(partner_links.c.link_id == link_id)
        if for_update:
            query = query.with_for_update()
        row = await self._one(query)
        return PartnerLinkRecord(**row._mapping) if row else None

    async def partner_link_for_command(
        self, application_id: str, command_id: str
    ) -> PartnerLinkRecord | None:
        row = await self._one(
            select(partner_links).where(
                partner_links.c.application_id == application_id,
                partner_links.c.command_id == command_id,
            )
        )
        return PartnerLinkRecord(**row._mapping) if row else None

    async def insert_partner_link(self, link: PartnerLinkRecord) -> None:
        await self.session.execute(partner_links.insert().values(**vars(link)))

    async def file_partner_link(self, link_id: str, subject: str) -> None:
        """File the link's answer under ``subject`` (a link made before it had its own)."""
        await self.session.execute(
            update(partner_links).where(partner_links.c.link_id == link_id).values(subject=subject)
        )

    async def answer_partner_link(
        self, link_id: str, confirmed: bool, note: str | None, at: datetime
    ) -> bool:
        """Record the answer once; False when the link was answered already."""
        result = await self.session.execute(
            update(partner_links)
            .where(partner_links.c.link_id == link_id, partner_links.c.answered_at.is_(None))
            .values(answered_at=at, confirmed=confirmed, note=note)
        )
        return bool(getattr(result, "rowcount", 0) == 1)
