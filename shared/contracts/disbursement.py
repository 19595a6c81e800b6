"""Payloads published by the disbursement service for the workflow and reporting."""

from __future__ import annotations

from shared.contracts.base import Contract
from shared.contracts.money import Money


class FundsReserved(Contract):
    application_id: str
    command_id: str
    amount: Money


class FundsRefused(Contract):
    application_id: str
    command_id: str
    amount: Money
    available: Money
    reason: str


class FundsReleased(Contract):
    application_id: str
    command_id: str
    amount: Money
    program_code: str
    cycle: str


class AwardAdjusted(Contract):
    application_id: str
    command_id: str
    new_award: Money
    reserved: Money


class DisbursementSettled(Contract):
    application_id: str
    command_id: str
    tranche: int
    amount: Money
    instruction_id: str
    finance_reference: str


class DisbursementFailed(Contract):
    """The payment failed for good: every attempt was refused (the money is reserved again)
    or went unanswered (escalated: still in payment; a late settlement follows as
    DisbursementSettled for the same command). attempts=0: refused before any instruction.
    """

    application_id: str
    command_id: str
    tranche: int
    instruction_id: str
    reason: str
    attempts: int


class RefundRequested(Contract):
    application_id: str
    command_id: str
    amount: Money
    reason: str
