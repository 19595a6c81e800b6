"""What program officers set: program budgets, exchange rates and payee currencies."""

from __future__ import annotations

from services.disbursement.domain import (
    Account,
    Balances,
    Budget,
    budget_change,
    opening_balance,
)
from services.disbursement.persistence import DisbursementStore, Rate
from services.disbursement.schemas import BudgetReport, PayeeView, RateView
from services.disbursement.service.base import DisbursementBase
from shared.contracts.envelope import Envelope
from shared.contracts.intake import ProgramCycleOpened
from shared.contracts.money import Money, parse_rate
from shared.errors import ConflictError, InvalidError, NotFoundError
from shared.service import Work


class Administration(DisbursementBase):
    async def open_cycle(self, work: Work, event: Envelope[ProgramCycleOpened]) -> None:
        opened = event.payload
        await self.open_budget(
            work, opened.program_code, opened.cycle, opened.annual_budget, opened.catalog_version
        )

    async def open_budget(
        self, work: Work, program_code: str, cycle: str, annual: Money, catalog_version: str
    ) -> bool:
        """The catalog's annual budget becomes the cycle's opening balance, once; whether
        it did now."""
        store = DisbursementStore(work.session)
        if await store.lock_budget(program_code, cycle) is not None:
            return False
        await store.create_budget(program_code, cycle, annual.currency, work.now)
        await store.post(
            opening_balance(annual.amount_minor),
            program_code=program_code,
            cycle=cycle,
            currency=annual.currency,
            application_id=None,
            reference=None,
            now=work.now,
            reason=f"annual budget of catalog {catalog_version}",
        )
        return True

    async def set_budget(
        self, work: Work, program_code: str, cycle: str, amount: Money, reason: str
    ) -> BudgetReport:
        """Set a program's whole budget for a cycle; never below what awards hold."""
        if amount.amount_minor < 0:
            raise InvalidError.at("amount", "a budget cannot be negative")
        store = DisbursementStore(work.session)
        budget = await store.lock_budget(program_code, cycle)
        if budget is None:
            await store.create_budget(program_code, cycle, amount.currency, work.now)
            balances = Balances(amount.currency)
        elif budget.currency != amount.currency:
            raise ConflictError(f"the {program_code} {cycle} budget is in {budget.currency}")
        else:
            balances = budget.balances
        committed = balances.budget - balances[Account.AVAILABLE]
        if amount.amount_minor < committed:
            raise ConflictError(
                f"the budget cannot go below the "
                f"{Money(amount_minor=committed, currency=amount.currency)} already committed"
            )
        posting = budget_change(balances.budget, amount.amount_minor)
        if posting is not None:
            await store.post(
                posting,
                program_code=program_code,
                cycle=cycle,
                currency=amount.currency,
                application_id=None,
                reference=None,
                now=work.now,
                reason=reason,
            )
        return await self.budget_report(work, program_code, cycle)

    async def budget_report(self, work: Work, program_code: str, cycle: str) -> BudgetReport:
        store = DisbursementStore(work.session)
        currency = await store.budget_currency(program_code, cycle)
        if currency is None:
            raise NotFoundError(f"no budget for program {program_code} cycle {cycle}")
        return await self._report(store, program_code, cycle, currency)

    async def budget_reports(self, work: Work, *, limit: int, offset: int) -> list[BudgetReport]:
        store = DisbursementStore(work.session)
        return [
            await self._report(store, code, cycle, currency)
            for code, cycle, currency in await store.budget_list(limit=limit, offset=offset)
        ]

    async def _report(
        self, store: DisbursementStore, program_code: str, cycle: str, currency: str
    ) -> BudgetReport:
        balances = await store.program_balances(program_code, cycle, currency)
        return BudgetReport.of(
            Budget(program_code, cycle, currency, balances),
            await store.settled_instructions(program_code, cycle),
            await store.budget_changes(program_code, cycle),
        )

    async def set_rate(self, work: Work, base: str, quote: str, rate: str, by: str) -> RateView:
        """Set the rate from a program currency to a payment currency (``rate`` is checked)."""
        try:
            parse_rate(rate)
        except ValueError as error:
            raise InvalidError.at("rate", str(error)) from error
        if base == quote:
            # What a currency pays in itself is fixed at 1; a stored rate would rescale it.
            raise ConflictError(f"{base} converts to itself at 1; that rate is fixed")
        recorded = Rate(base, quote, rate, work.now, by)
        await DisbursementStore(work.session).set_rate(recorded)
        return RateView.of(recorded)

    async def rates(self, work: Work, *, limit: int, offset: int) -> list[RateView]:
        store = DisbursementStore(work.session)
        return [RateView.of(rate) for rate in await store.rates(limit=limit, offset=offset)]

    async def set_payee(self, work: Work, payee_reference: str, currency: str) -> PayeeView:
        await DisbursementStore(work.session).set_payee(payee_reference, currency, work.now)
        return PayeeView(payee_reference=payee_reference, currency=currency)
