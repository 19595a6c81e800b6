"""What every area of the disbursement use cases shares: settings and ledger postings."""

from __future__ import annotations

from services.disbursement.domain import Instruction, Posting
from services.disbursement.persistence import DisbursementStore
from services.disbursement.settings import DisbursementSettings
from shared.clock import Clock, utc_now
from shared.contracts.workflows import LedgerCommand
from shared.service import Service, ServiceRuntime, Work


class DisbursementBase(Service):
    """The disbursement service's parts, built once by ``create_app``."""

    def __init__(
        self, runtime: ServiceRuntime, settings: DisbursementSettings, *, clock: Clock = utc_now
    ) -> None:
        super().__init__(runtime, clock=clock)
        self.settings = settings

    async def post_for_command(
        self, work: Work, posting: Posting, command: LedgerCommand, currency: str
    ) -> None:
        """Post against the command's program and award, keyed by its idempotency key."""
        await DisbursementStore(work.session).post(
            posting,
            program_code=command.program_code,
            cycle=command.cycle,
            currency=currency,
            application_id=command.application_id,
            reference=command.idempotency_key,
            now=work.now,
        )

    async def post_for_instruction(
        self, work: Work, posting: Posting, instruction: Instruction
    ) -> None:
        """Post against the instruction's award in the program currency, keyed by its id."""
        await DisbursementStore(work.session).post(
            posting,
            program_code=instruction.program_code,
            cycle=instruction.cycle,
            currency=instruction.award_amount.currency,
            application_id=instruction.application_id,
            reference=instruction.instruction_id,
            now=work.now,
        )
