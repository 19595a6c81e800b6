"""Program cycles opening: the catalog's annual budgets reach the ledger.

Intake owns the catalog. When a program's application window has opened, intake says so
once (``grants.program.cycle_opened.v1``) and disbursement posts the program's annual
budget as the cycle's opening balance. The event id is the program, cycle and catalog
version, so a restart or a second replica announces nothing twice.
"""

from __future__ import annotations

from services.intake.service.base import IntakeBase
from shared.contracts.envelope import deterministic_id
from shared.contracts.intake import ProgramCycleOpened, program_cycle_key
from shared.contracts.topics import PROGRAM_CYCLE_OPENED
from shared.service import Work


class ProgramCycles(IntakeBase):
    async def announce_open_cycles(self, work: Work) -> list[str]:
        """Announce every program cycle whose applications have opened; which were new."""
        announced = []
        version = self.catalog.version
        for rules in self.catalog.programs.values():
            if rules.application_opens > work.now.date():
                continue
            event_id = deterministic_id("cycle-opened", rules.code, rules.cycle, version)
            if await work.runtime.outbox.contains(work.session, str(event_id)):
                continue
            await work.publish(
                PROGRAM_CYCLE_OPENED,
                ProgramCycleOpened(
                    program_code=rules.code,
                    cycle=rules.cycle,
                    annual_budget=rules.annual_budget,
                    catalog_version=version,
                ),
                application_id=program_cycle_key(rules.code, rules.cycle),
                event_id=event_id,
            )
            announced.append(f"{rules.code}/{rules.cycle}")
        return announced
