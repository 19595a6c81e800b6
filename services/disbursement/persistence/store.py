"""Every query of the disbursement service, over one unit of work's session."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.disbursement.domain import (
    BUDGET_KINDS,
    Account,
    Award,
    Balances,
    Budget,
    Disposition,
    Instruction,
    InstructionStatus,
    Posting,
    Refund,
    RefundStatus,
)
from services.disbursement.persistence.records import (
    AppliedKey,
    BudgetChangeRow,
    DeadLetter,
    Delivery,
    FinanceReceipt,
    LedgerTransaction,
    Rate,
    balances_of,
    changing_columns,
    instruction_of,
    money_of,
    refund_columns,
    refund_of,
)
from services.disbursement.persistence.tables import (
    applied_keys,
    awards,
    budgets,
    entries,
    fx_rates,
    instructions,
    messaging,
    payees,
    refund_receipts,
    refunds,
    transactions,
    waitlist,
    webhook_deliveries,
)
from shared.contracts.money import Money


class DisbursementStore:
    """The queries of one unit of work."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _upsert(self, table: Table, key: dict[str, Any], values: dict[str, Any]) -> None:
        """Update the row with ``key``, or insert it (callers hold the program lock)."""
        condition = [table.c[name] == value for name, value in key.items()]
        changed = await self.session.execute(update(table).where(*condition).values(**values))
        if changed.rowcount == 0:  # type: ignore[attr-defined]
            await self.session.execute(table.insert().values(**key, **values))

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
        return balances_of(currency, rows)

    async def waitlisted_at(self, application_id: str) -> datetime | None:
        """When the application was submitted, if it is on the waitlist."""
        found = await self.session.scalar(
            select(waitlist.c.submitted_at).where(waitlist.c.application_id == application_id)
        )
        return found

    async def waiting_before(
        self, program_code: str, cycle: str, application_id: str, submitted_at: datetime
    ) -> tuple[int, int]:
        """How many waitlisted applications of the cycle came before, and what they need."""
        row = (
            await self.session.execute(
                select(func.count(), func.coalesce(func.sum(waitlist.c.amount_minor), 0)).where(
                    waitlist.c.program_code == program_code,
                    waitlist.c.cycle == cycle,
                    waitlist.c.application_id != application_id,
                    waitlist.c.submitted_at < submitted_at,
                )
            )
        ).one()
        return int(row[0]), int(row[1])

    async def join_waitlist(
        self, program_code: str, cycle: str, application_id: str, amount: Money, at: datetime
    ) -> None:
        await self.session.execute(
            waitlist.insert().values(
                application_id=application_id,
                program_code=program_code,
                cycle=cycle,
                amount_minor=amount.amount_minor,
                currency=amount.currency,
                submitted_at=at,
            )
        )

    async def leave_waitlist(self, application_id: str) -> None:
        await self.session.execute(
            delete(waitlist).where(waitlist.c.application_id == application_id)
        )

    async def budget_changes(self, program_code: str, cycle: str) -> list[BudgetChangeRow]:
        """Every change of a program cycle's budget, oldest first, with why it was made."""
        rows = (
            await self.session.execute(
                select(
                    transactions.c.created_at,
                    transactions.c.kind,
                    transactions.c.reason,
                    entries.c.amount_minor,
                )
                .join(entries, entries.c.transaction_id == transactions.c.id)
                .where(
                    transactions.c.program_code == program_code,
                    transactions.c.cycle == cycle,
                    transactions.c.kind.in_(BUDGET_KINDS),
                    entries.c.account == Account.AVAILABLE.value,
                )
                .order_by(transactions.c.created_at, transactions.c.id)
            )
        ).all()
        return [BudgetChangeRow(*row) for row in rows]

    async def budget_list(
        self, *, limit: int | None = None, offset: int = 0
    ) -> list[tuple[str, str, str]]:
        rows = (
            await self.session.execute(
                select(budgets.c.program_code, budgets.c.cycle, budgets.c.currency)
                .order_by(budgets.c.program_code, budgets.c.cycle)
                .limit(limit)
                .offset(offset)
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
        reason: str | None = None,
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
                reason=reason,
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
        return balances_of(currency, rows)

    async def save_award(
        self, application_id: str, program_code: str, cycle: str, awarded: Money, now: datetime
    ) -> None:
        await self._upsert(
            awards,
            {"application_id": application_id},
            {
                "program_code": program_code,
                "cycle": cycle,
                "currency": awarded.currency,
                "awarded_minor": awarded.amount_minor,
                "updated_at": now,
            },
        )

    # Idempotency keys -----------------------------------------------------------------------

    async def applied_key(self, kind: str, idempotency_key: str) -> AppliedKey | None:
        row = (
            await self.session.execute(
                select(
                    applied_keys.c.command_id,
                    applied_keys.c.answer_topic,
                    applied_keys.c.answer_payload,
                ).where(
                    applied_keys.c.kind == kind, applied_keys.c.idempotency_key == idempotency_key
                )
            )
        ).one_or_none()
        return None if row is None else AppliedKey(*row)

    async def record_applied_key(
        self,
        kind: str,
        idempotency_key: str,
        *,
        command_id: str,
        answer_topic: str,
        answer_payload: str,
        now: datetime,
    ) -> None:
        await self.session.execute(
            applied_keys.insert().values(
                kind=kind,
                idempotency_key=idempotency_key,
                command_id=command_id,
                answer_topic=answer_topic,
                answer_payload=answer_payload,
                applied_at=now,
            )
        )

    # Instructions ---------------------------------------------------------------------------

    async def instruction(self, instruction_id: str, *, lock: bool = False) -> Instruction | None:
        query = select(instructions).where(instructions.c.instruction_id == instruction_id)
        if lock:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        return None if row is None else instruction_of(row)

    async def add_instruction(self, instruction: Instruction) -> None:
        await self.session.execute(
            instructions.insert().values(
                instruction_id=instruction.instruction_id,
                application_id=instruction.application_id,
                program_code=instruction.program_code,
                cycle=instruction.cycle,
                tranche=instruction.tranche,
                payee_reference=instruction.payee_reference,
                amount_minor=instruction.amount.amount_minor,
                currency=instruction.amount.currency,
                award_amount_minor=instruction.award_amount.amount_minor,
                award_currency=instruction.award_amount.currency,
                fx_rate=instruction.fx_rate,
                value_date=instruction.value_date,
                memo=instruction.memo,
                created_at=instruction.created_at,
                **changing_columns(instruction),
            )
        )

    async def save_instruction(self, instruction: Instruction) -> None:
        await self.session.execute(
            update(instructions)
            .where(instructions.c.instruction_id == instruction.instruction_id)
            .values(**changing_columns(instruction))
        )

    async def _past_due(self, table: Table, status: str, now: datetime, limit: int) -> Any:
        """Rows in ``status`` past their ``due_at``, oldest first, locked; rows another
        replica holds are skipped, so two deadline scans never take up the same one."""
        return (
            await self.session.execute(
                select(table)
                .where(table.c.status == status, table.c.due_at <= now)
                .order_by(table.c.due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()

    async def overdue_instructions(self, now: datetime, limit: int) -> list[Instruction]:
        """Pending instructions past their deadline."""
        rows = await self._past_due(instructions, InstructionStatus.PENDING.value, now, limit)
        return [instruction_of(row) for row in rows]

    async def application_instructions(self, application_id: str) -> list[Instruction]:
        rows = (
            await self.session.execute(
                select(instructions)
                .where(instructions.c.application_id == application_id)
                .order_by(instructions.c.tranche, instructions.c.created_at)
            )
        ).all()
        return [instruction_of(row) for row in rows]

    async def instructions_by_id(self, ids: Sequence[str]) -> dict[str, Instruction]:
        if not ids:
            return {}
        rows = (
            await self.session.execute(
                select(instructions).where(instructions.c.instruction_id.in_(list(ids)))
            )
        ).all()
        return {row.instruction_id: instruction_of(row) for row in rows}

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
        return [instruction_of(row) for row in rows]

    async def settled_instructions(
        self, program_code: str | None = None, cycle: str | None = None
    ) -> list[Instruction]:
        query = select(instructions).where(instructions.c.status == InstructionStatus.SETTLED.value)
        if program_code is not None:
            query = query.where(
                instructions.c.program_code == program_code, instructions.c.cycle == cycle
            )
        rows = (await self.session.execute(query.order_by(instructions.c.settled_at))).all()
        return [instruction_of(row) for row in rows]

    # Settlement receipts --------------------------------------------------------------------

    async def delivery(self, delivery_id: str, signature: str) -> Delivery | None:
        """The webhook delivery with this id, or with this signature (a replayed request)."""
        table = webhook_deliveries
        row = (
            await self.session.execute(
                select(table).where(
                    (table.c.delivery_id == delivery_id) | (table.c.signature == signature)
                )
            )
        ).first()
        if row is None:
            return None
        return Delivery(row.delivery_id, row.status_code, json.loads(row.answer))

    async def add_delivery(
        self, delivery_id: str, signature: str, status_code: int, answer: Any, now: datetime
    ) -> None:
        await self.session.execute(
            webhook_deliveries.insert().values(
                delivery_id=delivery_id,
                signature=signature,
                status_code=status_code,
                answer=json.dumps(answer),
                received_at=now,
            )
        )

    async def add_receipt(
        self, table: Table, receipt: FinanceReceipt, *, event_id: str | None
    ) -> None:
        """Record finance's answer in ``table``: payments' receipts or refunds'."""
        amount = receipt.amount
        await self.session.execute(
            table.insert().values(
                **{table.info["subject"]: receipt.subject_id},
                outcome=receipt.outcome,
                disposition=receipt.disposition.value,
                finance_reference=receipt.finance_reference,
                amount_minor=amount.amount_minor if amount else None,
                currency=amount.currency if amount else None,
                reason=receipt.reason,
                channel=receipt.channel,
                event_id=event_id,
                received_at=receipt.received_at,
            )
        )

    async def receipts(
        self,
        table: Table,
        *,
        subject_ids: Sequence[str] | None = None,
        dispositions: Sequence[Disposition] | None = None,
    ) -> list[FinanceReceipt]:
        """Finance's answers recorded in ``table``, oldest first, about ``subject_ids`` if
        given."""
        subject = table.c[table.info["subject"]]
        query = select(table).order_by(table.c.id)
        if subject_ids is not None:
            query = query.where(subject.in_(list(subject_ids)))
        if dispositions is not None:
            query = query.where(table.c.disposition.in_([d.value for d in dispositions]))
        return [
            FinanceReceipt(
                subject_id=row._mapping[subject.name],
                outcome=row.outcome,
                disposition=Disposition(row.disposition),
                finance_reference=row.finance_reference,
                amount=money_of(row.amount_minor, row.currency),
                reason=row.reason,
                channel=row.channel,
                received_at=row.received_at,
            )
            for row in (await self.session.execute(query)).all()
        ]

    async def dead_letters(self, topics: Sequence[str]) -> list[DeadLetter]:
        """Messages on ``topics`` (broker names) dead-lettered and not replayed since.

        A message delivered again is dead-lettered again: it is listed once.
        """
        table = messaging.dead_letters
        rows = (
            await self.session.execute(
                select(table.c.topic, table.c.body_base64, table.c.dead_lettered_at)
                .where(table.c.topic.in_(list(topics)), table.c.replayed_at.is_(None))
                .order_by(table.c.id)
            )
        ).all()
        letters: dict[tuple[str, str], DeadLetter] = {}
        for row in rows:
            letters.setdefault(
                (row.topic, row.body_base64),
                DeadLetter(row.topic, base64.b64decode(row.body_base64), row.dead_lettered_at),
            )
        return list(letters.values())

    # Refunds ----------------------------------------------------------------------------

    async def refund(self, refund_id: str, *, lock: bool = False) -> Refund | None:
        query = select(refunds).where(refunds.c.refund_id == refund_id)
        if lock:
            query = query.with_for_update()
        row = (await self.session.execute(query)).one_or_none()
        return None if row is None else refund_of(row)

    async def add_refund(self, refund: Refund) -> None:
        await self.session.execute(
            refunds.insert().values(
                refund_id=refund.refund_id,
                application_id=refund.application_id,
                program_code=refund.program_code,
                cycle=refund.cycle,
                payer_reference=refund.payer_reference,
                amount_minor=refund.amount.amount_minor,
                currency=refund.amount.currency,
                reason=refund.reason,
                correlation_id=refund.correlation_id,
                created_at=refund.created_at,
                **refund_columns(refund),
            )
        )

    async def save_refund(self, refund: Refund) -> None:
        await self.session.execute(
            update(refunds)
            .where(refunds.c.refund_id == refund.refund_id)
            .values(**refund_columns(refund))
        )

    async def overdue_refunds(self, now: datetime, limit: int) -> list[Refund]:
        """Requested refunds past their due time."""
        rows = await self._past_due(refunds, RefundStatus.REQUESTED.value, now, limit)
        return [refund_of(row) for row in rows]

    async def refunds(
        self, *, application_id: str | None = None, open_only: bool = False
    ) -> list[Refund]:
        query = select(refunds).order_by(refunds.c.created_at, refunds.c.refund_id)
        if application_id is not None:
            query = query.where(refunds.c.application_id == application_id)
        if open_only:
            query = query.where(refunds.c.status != RefundStatus.RECEIVED.value)
        return [refund_of(row) for row in (await self.session.execute(query)).all()]

    async def refund_totals(self) -> list[tuple[str, int, int]]:
        """Per currency: what refunds asked back and what finance received of them."""
        rows = (
            await self.session.execute(
                select(
                    refunds.c.currency,
                    func.sum(refunds.c.amount_minor),
                    func.sum(refunds.c.received_minor),
                )
                .group_by(refunds.c.currency)
                .order_by(refunds.c.currency)
            )
        ).all()
        return [(row[0], int(row[1]), int(row[2])) for row in rows]

    async def payee_of(self, application_id: str) -> str | None:
        """The payee the award's tranches went to: who pays a refund back."""
        value: str | None = await self.session.scalar(
            select(instructions.c.payee_reference)
            .where(instructions.c.application_id == application_id)
            .order_by(instructions.c.tranche)
            .limit(1)
        )
        return value

    async def applied_refund_references(self, refund_id: str) -> set[str]:
        rows = await self.session.scalars(
            select(refund_receipts.c.finance_reference).where(
                refund_receipts.c.refund_id == refund_id,
                refund_receipts.c.disposition == Disposition.APPLIED.value,
                refund_receipts.c.outcome == "received",
            )
        )
        return {reference for reference in rows if reference is not None}

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
                row.id, LedgerTransaction(row.id, row.kind, row.reference, row.created_at, {})
            )
            item.amounts[row.account] = item.amounts.get(row.account, 0) + int(row.amount_minor)
        return list(found.values())

    # Rates and payees -----------------------------------------------------------------------

    async def rate(self, base: str, quote: str) -> str | None:
        value: str | None = await self.session.scalar(
            select(fx_rates.c.rate).where(
                fx_rates.c.base_currency == base, fx_rates.c.quote_currency == quote
            )
        )
        return value

    async def set_rate(self, rate: Rate) -> None:
        await self._upsert(
            fx_rates,
            {"base_currency": rate.base_currency, "quote_currency": rate.quote_currency},
            {"rate": rate.rate, "updated_at": rate.updated_at, "updated_by": rate.updated_by},
        )

    async def rates(self, *, limit: int | None = None, offset: int = 0) -> list[Rate]:
        rows = (
            await self.session.execute(
                select(fx_rates)
                .order_by(fx_rates.c.base_currency, fx_rates.c.quote_currency)
                .limit(limit)
                .offset(offset)
            )
        ).all()
        return [
            Rate(row.base_currency, row.quote_currency, row.rate, row.updated_at, row.updated_by)
            for row in rows
        ]

    async def payee_currency(self, payee_reference: str) -> str | None:
        value: str | None = await self.session.scalar(
            select(payees.c.currency).where(payees.c.payee_reference == payee_reference)
        )
        return value

    async def set_payee(self, payee_reference: str, currency: str, now: datetime) -> None:
        await self._upsert(
            payees,
            {"payee_reference": payee_reference},
            {"currency": currency, "updated_at": now},
        )
