"""Tables of the disbursement service and every query on them.

Migrated by ``services/disbursement/migrations`` (0002 creates the ledger tables).
SQLite stores timestamps without their zone: everything is written in UTC and read back
through ``_utc``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.disbursement.domain import (
    Account,
    Award,
    Balances,
    Budget,
    Disposition,
    InstructionStatus,
    Posting,
)
from shared.contracts.money import Money
from shared.messaging.tables import define_messaging_tables

metadata = MetaData()
messaging = define_messaging_tables(metadata, "disbursement")

_Id = BigInteger().with_variant(Integer(), "sqlite")
_Key = String(200)

budgets = Table(
    "disbursement_budgets",
    metadata,
    Column("program_code", String(40), nullable=False),
    Column("cycle", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("program_code", "cycle", name="pk_disbursement_budgets"),
)

awards = Table(
    "disbursement_awards",
    metadata,
    Column("application_id", _Key, primary_key=True),
    Column("program_code", String(40), nullable=False),
    Column("cycle", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("awarded_minor", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

transactions = Table(
    "disbursement_transactions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("program_code", String(40), nullable=False),
    Column("cycle", String(20), nullable=False),
    Column("application_id", _Key, nullable=True),
    Column("kind", String(30), nullable=False),
    Column("reference", _Key, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

entries = Table(
    "disbursement_entries",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column(
        "transaction_id",
        String(36),
        ForeignKey("disbursement_transactions.id", name="fk_disbursement_entries_transaction"),
        nullable=False,
    ),
    Column("program_code", String(40), nullable=False),
    Column("cycle", String(20), nullable=False),
    Column("application_id", _Key, nullable=True),
    Column("account", String(20), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
)
Index("ix_disbursement_entries_program", entries.c.program_code, entries.c.cycle, entries.c.account)
Index("ix_disbursement_entries_application", entries.c.application_id)

commands = Table(
    "disbursement_commands",
    metadata,
    Column("command_id", _Key, primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("idempotency_key", _Key, nullable=False),
    Column("application_id", _Key, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("result_topic", String(255), nullable=True),
    Column("result_payload", Text, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
Index("ix_disbursement_commands_key", commands.c.kind, commands.c.idempotency_key)

instructions = Table(
    "disbursement_instructions",
    metadata,
    Column("instruction_id", _Key, primary_key=True),
    Column("application_id", _Key, nullable=False),
    Column("program_code", String(40), nullable=False),
    Column("cycle", String(20), nullable=False),
    Column("tranche", Integer, nullable=False),
    Column("command_id", _Key, nullable=False),
    Column("correlation_id", String(100), nullable=False),
    Column("payee_reference", _Key, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("award_amount_minor", BigInteger, nullable=False),
    Column("award_currency", String(3), nullable=False),
    Column("fx_rate", String(40), nullable=True),
    Column("value_date", Date, nullable=False),
    Column("memo", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("sends", Integer, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("finance_reference", _Key, nullable=True),
    Column("settled_amount_minor", BigInteger, nullable=True),
    Column("settled_currency", String(3), nullable=True),
    Column("settled_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_disbursement_instructions_due", instructions.c.status, instructions.c.due_at)
Index("ix_disbursement_instructions_application", instructions.c.application_id)

receipts = Table(
    "disbursement_settlement_receipts",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("instruction_id", _Key, nullable=False),
    Column("outcome", String(10), nullable=False),
    Column("disposition", String(20), nullable=False),
    Column("finance_reference", _Key, nullable=True),
    Column("amount_minor", BigInteger, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("reason", Text, nullable=True),
    Column("channel", String(10), nullable=False),
    Column("event_id", String(36), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
Index("ix_disbursement_receipts_instruction", receipts.c.instruction_id)
Index("ix_disbursement_receipts_event", receipts.c.event_id)

fx_rates = Table(
    "disbursement_fx_rates",
    metadata,
    Column("base_currency", String(3), nullable=False),
    Column("quote_currency", String(3), nullable=False),
    Column("rate", String(40), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(200), nullable=False),
    PrimaryKeyConstraint("base_currency", "quote_currency", name="pk_disbursement_fx_rates"),
)

payees = Table(
    "disbursement_payees",
    metadata,
    Column("payee_reference", _Key, primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


@dataclass(frozen=True)
class StoredCommand:
    command_id: str
    kind: str
    idempotency_key: str
    outcome: str
    result_topic: str | None
    result_payload: str | None


@dataclass(frozen=True)
class Instruction:
    instruction_id: str
    application_id: str
    program_code: str
    cycle: str
    tranche: int
    command_id: str
    correlation_id: str
    payee_reference: str
    amount: Money
    award_amount: Money
    fx_rate: str | None
    value_date: date
    memo: str
    status: InstructionStatus
    attempts: int
    sends: int
    due_at: datetime
    last_error: str | None
    finance_reference: str | None
    settled_amount: Money | None
    settled_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Instruction:
        settled = (
            Money(amount_minor=int(row.settled_amount_minor), currency=row.settled_currency)
            if row.settled_amount_minor is not None
            else None
        )
        return cls(
            instruction_id=row.instruction_id,
            application_id=row.application_id,
            program_code=row.program_code,
            cycle=row.cycle,
            tranche=row.tranche,
            command_id=row.command_id,
            correlation_id=row.correlation_id,
            payee_reference=row.payee_reference,
            amount=Money(amount_minor=int(row.amount_minor), currency=row.currency),
            award_amount=Money(
                amount_minor=int(row.award_amount_minor), currency=row.award_currency
            ),
            fx_rate=row.fx_rate,
            value_date=row.value_date,
            memo=row.memo,
            status=InstructionStatus(row.status),
            attempts=row.attempts,
            sends=row.sends,
            due_at=_utc(row.due_at),
            last_error=row.last_error,
            finance_reference=row.finance_reference,
            settled_amount=settled,
            settled_at=_optional_utc(row.settled_at),
            created_at=_utc(row.created_at),
        )


@dataclass(frozen=True)
class Receipt:
    id: int
    instruction_id: str
    outcome: str
    disposition: Disposition
    finance_reference: str | None
    amount: Money | None
    reason: str | None
    channel: str
    received_at: datetime


@dataclass(frozen=True)
class LedgerTransaction:
    id: str
    kind: str
    reference: str | None
    created_at: datetime
    amounts: dict[str, int]


def _balances(currency: str, rows: Sequence[Any]) -> Balances:
    return Balances(currency, {Account(row.account): int(row.total) for row in rows})


class DisbursementStore:
    """The queries of one unit of work."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Budgets and balances ----------------------------------------------------------------

    async def lock_program(self, program_code: str, cycle: str) -> str | None:
        """Lock the program budget until the transaction ends; its currency, None if unknown.

        Every ledger movement of a program takes this lock first, so movements of one
        program run one at a time. PostgreSQL takes a row lock (``FOR UPDATE``); SQLite
        needs none, as every transaction there begins with ``BEGIN IMMEDIATE``.
        """
        currency: str | None = await self.session.scalar(
            select(budgets.c.currency)
            .where(budgets.c.program_code == program_code, budgets.c.cycle == cycle)
            .with_for_update()
        )
        return currency

    async def lock_budget(self, program_code: str, cycle: str) -> Budget | None:
        """The budget and its balances, locked until the transaction ends."""
        currency = await self.lock_program(program_code, cycle)
        if currency is None:
            return None
        return Budget(
            program_code,
            cycle,
            currency,
            await self.program_balances(program_code, cycle, currency),
        )

    async def budget_currency(self, program_code: str, cycle: str) -> str | None:
        value: str | None = await self.session.scalar(
            select(budgets.c.currency).where(
                budgets.c.program_code == program_code, budgets.c.cycle == cycle
            )
        )
        return value

    async def create_budget(
        self, program_code: str, cycle: str, currency: str, now: datetime
    ) -> None:
        await self.session.execute(
            budgets.insert().values(
                program_code=program_code, cycle=cycle, currency=currency, created_at=now
            )
        )

    async def program_balances(self, program_code: str, cycle: str, currency: str) -> Balances:
        rows = (
            await self.session.execute(
                select(entries.c.account, func.sum(entries.c.amount_minor).label("total"))
                .where(entries.c.program_code == program_code, entries.c.cycle == cycle)
                .group_by(entries.c.account)
            )
        ).all()
        return _balances(currency, rows)

    async def budget_list(self) -> list[tuple[str, str, str]]:
        rows = (
            await self.session.execute(
                select(budgets.c.program_code, budgets.c.cycle, budgets.c.currency).order_by(
                    budgets.c.program_code, budgets.c.cycle
                )
            )
        ).all()
        return [(row.program_code, row.cycle, row.currency) for row in rows]

    async def post(
        self,
        posting: Posting,
        *,
        program_code: str,
        cycle: str,
        currency: str,
        application_id: str | None,
        reference: str | None,
        now: datetime,
    ) -> str:
        transaction_id = str(uuid.uuid4())
        await self.session.execute(
            transactions.insert().values(
                id=transaction_id,
                program_code=program_code,
                cycle=cycle,
                application_id=application_id,
                kind=posting.kind,
                reference=reference,
                created_at=now,
            )
        )
        await self.session.execute(
            entries.insert(),
            [
                {
                    "transaction_id": transaction_id,
                    "program_code": program_code,
                    "cycle": cycle,
                    "application_id": entry.application_id,
                    "account": entry.account.value,
                    "amount_minor": entry.amount_minor,
                    "currency": currency,
                }
                for entry in posting.entries
            ],
        )
        return transaction_id

    # Awards ---------------------------------------------------------------------------------

    async def award(self, application_id: str) -> Award | None:
        row = (
            await self.session.execute(
                select(awards).where(awards.c.application_id == application_id)
            )
        ).one_or_none()
        if row is None:
            return None
        balances = await self.award_balances(application_id, row.currency)
        return Award(
            application_id=application_id,
            program_code=row.program_code,
            cycle=row.cycle,
            awarded=Money(amount_minor=int(row.awarded_minor), currency=row.currency),
            balances=balances,
        )

    async def award_balances(self, application_id: str, currency: str) -> Balances:
        rows = (
            await self.session.execute(
                select(entries.c.account, func.sum(entries.c.amount_minor).label("total"))
                .where(entries.c.application_id == application_id)
                .group_by(entries.c.account)
            )
        ).all()
        return _balances(currency, rows)

    async def save_award(
        self, application_id: str, program_code: str, cycle: str, awarded: Money, now: datetime
    ) -> None:
        values = {
            "program_code": program_code,
            "cycle": cycle,
            "currency": awarded.currency,
            "awarded_minor": awarded.amount_minor,
            "updated_at": now,
        }
        changed = await self.session.execute(
            update(awards).where(awards.c.application_id == application_id).values(**values)
        )
        if changed.rowcount == 0:  # type: ignore[attr-defined]
            await self.session.execute(
                awards.insert().values(application_id=application_id, **values)
            )

    # Commands -------------------------------------------------------------------------------

    async def command(self, command_id: str) -> StoredCommand | None:
        row = (
            await self.session.execute(select(commands).where(commands.c.command_id == command_id))
        ).one_or_none()
        return None if row is None else _stored_command(row)

    async def successful_command(self, kind: str, idempotency_key: str) -> StoredCommand | None:
        row = (
            await self.session.execute(
                select(commands)
                .where(
                    commands.c.kind == kind,
                    commands.c.idempotency_key == idempotency_key,
                    commands.c.outcome == "done",
                )
                .order_by(commands.c.received_at)
                .limit(1)
            )
        ).one_or_none()
        return None if row is None else _stored_command(row)

    async def record_command(
        self,
        *,
        command_id: str,
        kind: str,
        idempotency_key: str,
        application_id: str,
        outcome: str,
        result_topic: str | None,
        result_payload: str | None,
        now: datetime,
    ) -> None:
        await self.session.execute(
            commands.insert().values(
                command_id=command_id,
                kind=kind,
                idempotency_key=idempotency_key,
                application_id=application_id,
                outcome=outcome,
                result_topic=result_topic,
                result_payload=result_payload,
                received_at=now,
            )
        )

    async def store_result(
        self, command_id: str, outcome: str, result_topic: str, result_payload: str
    ) -> None:
        await self.session.execute(
            update(commands)
            .where(commands.c.command_id == command_id)
            .values(outcome=outcome, result_topic=result_topic, result_payload=result_payload)
        )

    # Instructions ---------------------------------------------------------------------------

    async def instruction(self, instruction_id: str, *, lock: bool = False) -> Instruction | None:
        query = select(instructions).where(instructions.c.instruction_id == instruction_id)
        if lock:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        return None if row is None else Instruction.from_row(row)

    async def add_instruction(self, instruction: Instruction) -> None:
        await self.session.execute(
            instructions.insert().values(
                instruction_id=instruction.instruction_id,
                application_id=instruction.application_id,
                program_code=instruction.program_code,
                cycle=instruction.cycle,
                tranche=instruction.tranche,
                command_id=instruction.command_id,
                correlation_id=instruction.correlation_id,
                payee_reference=instruction.payee_reference,
                amount_minor=instruction.amount.amount_minor,
                currency=instruction.amount.currency,
                award_amount_minor=instruction.award_amount.amount_minor,
                award_currency=instruction.award_amount.currency,
                fx_rate=instruction.fx_rate,
                value_date=instruction.value_date,
                memo=instruction.memo,
                status=instruction.status.value,
                attempts=instruction.attempts,
                sends=instruction.sends,
                due_at=instruction.due_at,
                last_error=instruction.last_error,
                created_at=instruction.created_at,
            )
        )

    async def update_instruction(self, instruction_id: str, **values: Any) -> None:
        if isinstance(values.get("status"), InstructionStatus):
            values["status"] = values["status"].value
        await self.session.execute(
            update(instructions)
            .where(instructions.c.instruction_id == instruction_id)
            .values(**values)
        )

    async def overdue_instructions(self, now: datetime, limit: int) -> list[Instruction]:
        """Pending instructions past their deadline, locked; others' locked rows are skipped."""
        rows = (
            await self.session.execute(
                select(instructions)
                .where(
                    instructions.c.status == InstructionStatus.PENDING.value,
                    instructions.c.due_at <= now,
                )
                .order_by(instructions.c.due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        return [Instruction.from_row(row) for row in rows]

    async def application_instructions(self, application_id: str) -> list[Instruction]:
        rows = (
            await self.session.execute(
                select(instructions)
                .where(instructions.c.application_id == application_id)
                .order_by(instructions.c.tranche, instructions.c.created_at)
            )
        ).all()
        return [Instruction.from_row(row) for row in rows]

    async def instructions_by_id(self, ids: Sequence[str]) -> dict[str, Instruction]:
        if not ids:
            return {}
        rows = (
            await self.session.execute(
                select(instructions).where(instructions.c.instruction_id.in_(list(ids)))
            )
        ).all()
        return {row.instruction_id: Instruction.from_row(row) for row in rows}

    async def unsettled_past(self, now: datetime) -> list[Instruction]:
        rows = (
            await self.session.execute(
                select(instructions)
                .where(
                    instructions.c.status.in_(
                        [InstructionStatus.PENDING.value, InstructionStatus.ESCALATED.value]
                    ),
                    instructions.c.due_at < now,
                )
                .order_by(instructions.c.due_at)
            )
        ).all()
        return [Instruction.from_row(row) for row in rows]

    async def settled_instructions(
        self, program_code: str | None = None, cycle: str | None = None
    ) -> list[Instruction]:
        query = select(instructions).where(instructions.c.status == InstructionStatus.SETTLED.value)
        if program_code is not None:
            query = query.where(
                instructions.c.program_code == program_code, instructions.c.cycle == cycle
            )
        rows = (await self.session.execute(query.order_by(instructions.c.settled_at))).all()
        return [Instruction.from_row(row) for row in rows]

    # Settlement receipts --------------------------------------------------------------------

    async def add_receipt(
        self,
        *,
        instruction_id: str,
        outcome: str,
        disposition: Disposition,
        finance_reference: str | None,
        amount: Money | None,
        reason: str | None,
        channel: str,
        event_id: str | None,
        now: datetime,
    ) -> None:
        await self.session.execute(
            receipts.insert().values(
                instruction_id=instruction_id,
                outcome=outcome,
                disposition=disposition.value,
                finance_reference=finance_reference,
                amount_minor=amount.amount_minor if amount else None,
                currency=amount.currency if amount else None,
                reason=reason,
                channel=channel,
                event_id=event_id,
                received_at=now,
            )
        )

    async def receipt_disposition(self, event_id: str) -> Disposition | None:
        value = await self.session.scalar(
            select(receipts.c.disposition).where(receipts.c.event_id == event_id).limit(1)
        )
        return None if value is None else Disposition(value)

    async def receipts(
        self,
        *,
        instruction_ids: Sequence[str] | None = None,
        dispositions: Sequence[Disposition] | None = None,
    ) -> list[Receipt]:
        query = select(receipts).order_by(receipts.c.id)
        if instruction_ids is not None:
            query = query.where(receipts.c.instruction_id.in_(list(instruction_ids)))
        if dispositions is not None:
            query = query.where(receipts.c.disposition.in_([d.value for d in dispositions]))
        rows = (await self.session.execute(query)).all()
        return [
            Receipt(
                id=row.id,
                instruction_id=row.instruction_id,
                outcome=row.outcome,
                disposition=Disposition(row.disposition),
                finance_reference=row.finance_reference,
                amount=(
                    Money(amount_minor=int(row.amount_minor), currency=row.currency)
                    if row.amount_minor is not None
                    else None
                ),
                reason=row.reason,
                channel=row.channel,
                received_at=_utc(row.received_at),
            )
            for row in rows
        ]

    # Ledger history -------------------------------------------------------------------------

    async def application_transactions(self, application_id: str) -> list[LedgerTransaction]:
        rows = (
            await self.session.execute(
                select(
                    transactions.c.id,
                    transactions.c.kind,
                    transactions.c.reference,
                    transactions.c.created_at,
                    entries.c.account,
                    entries.c.application_id,
                    entries.c.amount_minor,
                )
                .join(entries, entries.c.transaction_id == transactions.c.id)
                .where(transactions.c.application_id == application_id)
                .order_by(transactions.c.created_at, entries.c.id)
            )
        ).all()
        found: dict[str, LedgerTransaction] = {}
        for row in rows:
            item = found.setdefault(
                row.id,
                LedgerTransaction(row.id, row.kind, row.reference, _utc(row.created_at), {}),
            )
            item.amounts[row.account] = item.amounts.get(row.account, 0) + int(row.amount_minor)
        return list(found.values())

    async def transaction_sums(self) -> list[int]:
        """The sum of every transaction's entries (each must be zero)."""
        rows = (
            await self.session.execute(
                select(func.sum(entries.c.amount_minor)).group_by(entries.c.transaction_id)
            )
        ).all()
        return [int(row[0]) for row in rows]

    # Outbox ---------------------------------------------------------------------------------

    async def requeue_event(self, event_id: str) -> bool:
        """Have the relay publish an event of ours again; False when there is no such event."""
        outbox = messaging.outbox
        found = await self.session.scalar(
            select(outbox.c.id).where(outbox.c.event_id == event_id).with_for_update()
        )
        if found is None:
            return False
        await self.session.execute(update(outbox).where(outbox.c.id == found).values(sent_at=None))
        return True

    # Rates and payees -----------------------------------------------------------------------

    async def rate(self, base: str, quote: str) -> str | None:
        value: str | None = await self.session.scalar(
            select(fx_rates.c.rate).where(
                fx_rates.c.base_currency == base, fx_rates.c.quote_currency == quote
            )
        )
        return value

    async def set_rate(self, base: str, quote: str, rate: str, by: str, now: datetime) -> None:
        changed = await self.session.execute(
            update(fx_rates)
            .where(fx_rates.c.base_currency == base, fx_rates.c.quote_currency == quote)
            .values(rate=rate, updated_at=now, updated_by=by)
        )
        if changed.rowcount == 0:  # type: ignore[attr-defined]
            await self.session.execute(
                fx_rates.insert().values(
                    base_currency=base,
                    quote_currency=quote,
                    rate=rate,
                    updated_at=now,
                    updated_by=by,
                )
            )

    async def rates(self) -> list[tuple[str, str, str, datetime, str]]:
        rows = (
            await self.session.execute(
                select(fx_rates).order_by(fx_rates.c.base_currency, fx_rates.c.quote_currency)
            )
        ).all()
        return [
            (row.base_currency, row.quote_currency, row.rate, _utc(row.updated_at), row.updated_by)
            for row in rows
        ]

    async def payee_currency(self, payee_reference: str) -> str | None:
        value: str | None = await self.session.scalar(
            select(payees.c.currency).where(payees.c.payee_reference == payee_reference)
        )
        return value

    async def set_payee(self, payee_reference: str, currency: str, now: datetime) -> None:
        changed = await self.session.execute(
            update(payees)
            .where(payees.c.payee_reference == payee_reference)
            .values(currency=currency, updated_at=now)
        )
        if changed.rowcount == 0:  # type: ignore[attr-defined]
            await self.session.execute(
                payees.insert().values(
                    payee_reference=payee_reference, currency=currency, updated_at=now
                )
            )


def _stored_command(row: Any) -> StoredCommand:
    return StoredCommand(
        command_id=row.command_id,
        kind=row.kind,
        idempotency_key=row.idempotency_key,
        outcome=row.outcome,
        result_topic=row.result_topic,
        result_payload=row.result_payload,
    )
