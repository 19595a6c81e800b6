"""The disbursement rules: a double-entry ledger over program budgets and awards. No I/O.

Every movement of money is a ``Posting`` whose entries sum to zero. Balances are sums of
entries; a positive balance is money sitting in that account:

    funding      where a program budget comes from (its balance is minus the budget)
    available    budget not committed to any award
    reserved     per award: committed, not yet instructed to finance
    in_payment   per award: instructed to finance, not settled
    disbursed    per award: settled by finance
    refund_due   per award: paid out, to be paid back by the member

A refund goes from ``disbursed`` to ``refund_due`` when the workflow requests it, and from
``refund_due`` back to ``available`` as finance receives it, so the program can award the
money again.

The decisions below take the balances read under the program's lock and return either a
posting or a ``Refusal`` with a reason the workflow (and an officer) can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from shared.contracts.money import Money
from shared.errors import InvalidCommandError


class Account(StrEnum):
    FUNDING = "funding"
    AVAILABLE = "available"
    RESERVED = "reserved"
    IN_PAYMENT = "in_payment"
    DISBURSED = "disbursed"
    REFUND_DUE = "refund_due"


PROGRAM_ACCOUNTS: Final = frozenset({Account.FUNDING, Account.AVAILABLE})


@dataclass(frozen=True)
class Entry:
    account: Account
    application_id: str | None
    amount_minor: int


@dataclass(frozen=True)
class Posting:
    """One balanced ledger transaction."""

    kind: str
    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        if sum(entry.amount_minor for entry in self.entries) != 0:
            raise ValueError(f"posting {self.kind} does not balance: {self.entries}")
        for entry in self.entries:
            if (entry.account in PROGRAM_ACCOUNTS) != (entry.application_id is None):
                raise ValueError(f"{entry.account} entry with application {entry.application_id}")


def transfer(kind: str, amount_minor: int, source: Entry, target: Entry) -> Posting:
    """Move ``amount_minor`` from ``source``'s account to ``target``'s (entry amounts ignored)."""
    return Posting(
        kind,
        (
            Entry(source.account, source.application_id, -amount_minor),
            Entry(target.account, target.application_id, amount_minor),
        ),
    )


def program_account(account: Account) -> Entry:
    return Entry(account, None, 0)


def award_account(account: Account, application_id: str) -> Entry:
    return Entry(account, application_id, 0)


@dataclass(frozen=True)
class Balances:
    """Balances of some accounts (of a program, or of one award), in minor units."""

    currency: str
    amounts: dict[Account, int] = field(default_factory=dict)

    def __getitem__(self, account: Account) -> int:
        return self.amounts.get(account, 0)

    def money(self, account: Account) -> Money:
        return Money(amount_minor=self[account], currency=self.currency)

    @property
    def budget(self) -> int:
        return -self[Account.FUNDING]

    @property
    def committed(self) -> int:
        """What awards hold: reserved, in payment or paid (refunds due count as paid back)."""
        return self[Account.RESERVED] + self[Account.IN_PAYMENT] + self[Account.DISBURSED]

    @property
    def paid(self) -> int:
        """Paid or possibly paid (in payment), net of refunds requested."""
        return self[Account.IN_PAYMENT] + self[Account.DISBURSED]


@dataclass(frozen=True)
class Budget:
    program_code: str
    cycle: str
    currency: str
    balances: Balances


@dataclass(frozen=True)
class Award:
    application_id: str
    program_code: str
    cycle: str
    awarded: Money
    balances: Balances

    @property
    def live(self) -> bool:
        return self.balances.committed > 0


@dataclass(frozen=True)
class Refusal:
    reason: str
    # The budget is short: the application waits its turn on the waitlist.
    waitlisted: bool = False


@dataclass(frozen=True)
class Reservation:
    posting: Posting
    amount: Money


@dataclass(frozen=True)
class Release:
    posting: Posting | None
    amount: Money


@dataclass(frozen=True)
class Adjustment:
    posting: Posting | None
    new_award: Money
    reserved: Money


def decide_reservation(
    budget: Budget | None,
    award: Award | None,
    *,
    application_id: str,
    program_code: str,
    cycle: str,
    amount: Money,
    waiting_before: tuple[int, int] = (0, 0),
) -> Reservation | Refusal:
    """Reserve ``amount`` if the budget covers it after what the applications waitlisted
    before it need (``waiting_before``: how many, and their amounts): the waitlist is served
    in submission order, and a later application does not take what an earlier one waits for.
    """
    if budget is None:
        return Refusal(f"no budget for program {program_code} cycle {cycle}")
    if amount.currency != budget.currency:
        return Refusal(
            f"the award is in {amount.currency} but the {program_code} {cycle} budget "
            f"is in {budget.currency}"
        )
    if amount.amount_minor <= 0:
        return Refusal("the amount to reserve must be positive")
    if award is not None and award.live:
        return Refusal(
            f"application {application_id} already holds an award of {award.awarded}: "
            "adjust it instead"
        )
    available = budget.balances.money(Account.AVAILABLE)
    if available < amount:
        return Refusal(
            f"the {program_code} {cycle} budget has {available} available, {amount} requested",
            waitlisted=True,
        )
    earlier, held_minor = waiting_before
    if available.amount_minor - held_minor < amount.amount_minor:
        held = Money(amount_minor=held_minor, currency=amount.currency)
        return Refusal(
            f"the {program_code} {cycle} budget has {available} available, but {earlier} "
            f"application(s) submitted earlier wait for {held} first",
            waitlisted=True,
        )
    posting = transfer(
        "reserve",
        amount.amount_minor,
        program_account(Account.AVAILABLE),
        award_account(Account.RESERVED, application_id),
    )
    return Reservation(posting, amount)


def _belongs(award: Award | None, program_code: str, cycle: str) -> bool:
    return award is not None and (award.program_code, award.cycle) == (program_code, cycle)


def decide_release(
    award: Award | None,
    *,
    program_code: str,
    cycle: str,
    amount: Money | None,
    budget_currency: str | None,
) -> Release:
    """Release up to ``amount`` (all when None) of what the award still holds in reserve.

    Releasing what was never reserved releases nothing, and says so, so a withdrawal before
    the reservation still gets its answer.
    """
    if award is None or not _belongs(award, program_code, cycle):
        currency = amount.currency if amount is not None else budget_currency or "USD"
        return Release(None, Money.zero(currency))
    currency = award.awarded.currency
    if amount is not None and amount.currency != currency:
        raise InvalidCommandError(f"release in {amount.currency} of an award in {currency}")
    if amount is not None and amount.amount_minor < 0:
        raise InvalidCommandError("the amount to release cannot be negative")
    reserved = award.balances[Account.RESERVED]
    released = reserved if amount is None else min(amount.amount_minor, reserved)
    if released == 0:
        return Release(None, Money.zero(currency))
    posting = transfer(
        "release",
        released,
        award_account(Account.RESERVED, award.application_id),
        program_account(Account.AVAILABLE),
    )
    return Release(posting, Money(amount_minor=released, currency=currency))


def decide_payment(
    award: Award | None, *, program_code: str, cycle: str, tranche: int, amount: Money
) -> Posting | Refusal:
    """Move a tranche from the reservation into payment, or say why it cannot be paid."""
    if award is None:
        return Refusal("no funds are reserved for this application")
    if not _belongs(award, program_code, cycle):
        return Refusal(f"the award is in {award.program_code} {award.cycle}")
    if amount.currency != award.awarded.currency:
        return Refusal(
            f"the tranche is in {amount.currency}, the award in {award.awarded.currency}"
        )
    if amount.amount_minor <= 0:
        return Refusal("the tranche amount must be positive")
    reserved = award.balances.money(Account.RESERVED)
    if amount > reserved:
        return Refusal(f"tranche {tranche} of {amount} exceeds the {reserved} still reserved")
    return transfer(
        "instruct",
        amount.amount_minor,
        award_account(Account.RESERVED, award.application_id),
        award_account(Account.IN_PAYMENT, award.application_id),
    )


def decide_refund(
    award: Award | None, *, program_code: str, cycle: str, amount: Money
) -> tuple[Posting | None, Money]:
    """Ask back up to ``amount`` of what was paid; never more than was paid."""
    if award is None or not _belongs(award, program_code, cycle):
        return None, Money.zero(amount.currency)
    if amount.currency != award.awarded.currency:
        raise InvalidCommandError(
            f"refund in {amount.currency} of an award in {award.awarded.currency}"
        )
    if amount.amount_minor < 0:
        raise InvalidCommandError("the refund amount cannot be negative")
    refunded = min(amount.amount_minor, award.balances[Account.DISBURSED])
    money = Money(amount_minor=refunded, currency=amount.currency)
    if refunded == 0:
        return None, money
    posting = transfer(
        "refund",
        refunded,
        award_account(Account.DISBURSED, award.application_id),
        award_account(Account.REFUND_DUE, award.application_id),
    )
    return posting, money


def decide_adjustment(
    budget: Budget | None,
    award: Award | None,
    *,
    program_code: str,
    cycle: str,
    new_award: Money,
) -> Adjustment | Refusal:
    """Follow an amended award with the reservation; what is paid stays paid."""
    if budget is None or award is None or not _belongs(award, program_code, cycle):
        return Refusal(f"no award to adjust in {program_code} {cycle}")
    currency = award.awarded.currency
    if new_award.currency != currency:
        return Refusal(f"the new award is in {new_award.currency}, the award in {currency}")
    if new_award.amount_minor < 0:
        return Refusal("the new award cannot be negative")
    paid = award.balances.paid
    if new_award.amount_minor < paid:
        return Refusal(
            f"the new award of {new_award} is below the "
            f"{Money(amount_minor=paid, currency=currency)} already paid or in payment: "
            "request a refund of the difference first"
        )
    reserved = award.balances[Account.RESERVED]
    target = new_award.amount_minor - paid
    delta = target - reserved
    available = budget.balances[Account.AVAILABLE]
    if delta > available:
        return Refusal(
            f"the {program_code} {cycle} budget has "
            f"{Money(amount_minor=available, currency=currency)} available, "
            f"{Money(amount_minor=delta, currency=currency)} more needed"
        )
    posting = None
    if delta != 0:
        posting = transfer(
            "adjust",
            delta,
            program_account(Account.AVAILABLE),
            award_account(Account.RESERVED, award.application_id),
        )
    return Adjustment(posting, new_award, Money(amount_minor=target, currency=currency))


# Program budgets -------------------------------------------------------------------------

# The transactions that change a program's budget: each says why (``reason``).
BUDGET_KINDS: Final = ("opening_balance", "budget")


def opening_balance(annual_budget_minor: int) -> Posting:
    """A cycle's annual budget from the catalog, posted when the cycle opens."""
    return transfer(
        "opening_balance",
        annual_budget_minor,
        program_account(Account.FUNDING),
        program_account(Account.AVAILABLE),
    )


def budget_change(current_minor: int, wanted_minor: int) -> Posting | None:
    delta = wanted_minor - current_minor
    if delta == 0:
        return None
    return transfer(
        "budget", delta, program_account(Account.FUNDING), program_account(Account.AVAILABLE)
    )
