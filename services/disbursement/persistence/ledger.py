"""The ledger's queries of ``DisbursementStore``: budgets and balances, the waitlist,
postings, awards and an application's ledger history."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select

from services.disbursement.domain import (
    BUDGET_KINDS,
    Account,
    Award,
    Balances,
    Budget,
    Posting,
)
from services.disbursement.persistence.records import (
    BudgetChangeRow,
    LedgerTransaction,
    balances_of,
)
from services.disbursement.persistence.tables import (
    awards,
    budgets,
    entries,
    transactions,
    waitlist,
)
from shared.contracts.money import Money
from shared.persistence import Store


class LedgerQueries(Store):
    """Budgets, balances, the waitlist, postings and awards."""

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
