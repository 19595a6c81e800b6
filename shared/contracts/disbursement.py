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


class RefundReceived(Contract):
    """Finance received (part of) a refund; the ledger's ``refund_due`` went down by it and
    the money is available to the program's budget again."""

    application_id: ApplicationId
    refund_id: Reference
    amount: Money = Field(description="What this receipt brought back.")
    received: Money = Field(description="Everything received of this refund so far.")
    outstanding: Money = Field(description="What is still due of this refund.")
    refund_due: Money = Field(description="What the application still owes, every refund.")
    finance_reference: Reference


class RefundOverdue(Contract):
    """A refund is not received after the last reminder (or finance could not collect it):
    a program officer must follow it up. It stays due; a later receipt still counts."""

    application_id: ApplicationId
    program_code: ProgramCode
    cycle: Cycle
    refund_id: Reference
    amount: Money
    outstanding: Money
    reminders: int = Field(ge=0, le=1000)
    reason: Reason
