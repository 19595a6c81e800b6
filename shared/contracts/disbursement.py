"""Payloads published by the disbursement service for the workflow and reporting."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shared.contracts.base import (
    ApplicationId,
    CommandId,
    Contract,
    Cycle,
    ProgramCode,
    Reason,
    Reference,
)
from shared.contracts.money import Money

Tranche = Field(ge=1, le=100)


class FundsReserved(Contract):
    application_id: ApplicationId
    command_id: CommandId
    amount: Money


class FundsRefused(Contract):
    application_id: ApplicationId
    command_id: CommandId
    amount: Money
    available: Money
    reason: Reason


class FundsReleased(Contract):
    application_id: ApplicationId
    command_id: CommandId
    amount: Money
    program_code: ProgramCode
    cycle: Cycle


class AwardAdjusted(Contract):
    application_id: ApplicationId
    command_id: CommandId
    new_award: Money
    reserved: Money


class DisbursementSettled(Contract):
    application_id: ApplicationId
    command_id: CommandId
    tranche: int = Tranche
    amount: Money
    instruction_id: Reference
    finance_reference: Annotated[str, Field(max_length=200)]


class DisbursementFailed(Contract):
    """The payment failed for good: every attempt was refused (the money is reserved again)
    or went unanswered (escalated: still in payment; a late settlement follows as
    DisbursementSettled for the same command). attempts=0: refused before any instruction.
    """

    application_id: ApplicationId
    command_id: CommandId
    tranche: int = Tranche
    instruction_id: Reference
    reason: Reason
    attempts: int = Field(ge=0, le=1000)


class RefundRequested(Contract):
    application_id: ApplicationId
    command_id: CommandId
    amount: Money
    reason: Reason
