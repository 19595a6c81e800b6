"""The payment queries of ``DisbursementStore``: payment instructions, finance's receipts
and webhook deliveries, and refunds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select, update

from services.disbursement.domain import (
    Disposition,
    Instruction,
    InstructionStatus,
    Refund,
    RefundStatus,
)
from services.disbursement.persistence.records import (
    Delivery,
    FinanceReceipt,
    changing_columns,
    instruction_of,
    money_of,
    refund_columns,
    refund_of,
)
from services.disbursement.persistence.tables import (
    instructions,
    refund_receipts,
    refunds,
    webhook_deliveries,
)
from shared.persistence import Store


class PaymentQueries(Store):
    """Payment instructions, receipts and deliveries from finance, and refunds."""

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
