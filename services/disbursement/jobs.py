"""The service's clock: the settlement deadline and the refund reminders, which drive the
retries towards finance."""

from __future__ import annotations

import asyncio
import logging

from services.disbursement.service import DisbursementService
from shared.service import Job

logger = logging.getLogger(__name__)

# Instructions handled per transaction; a longer backlog takes several.
BATCH = 100


def settlement_deadline(service: DisbursementService) -> Job:
    """A loop that sends unsettled instructions again past their deadline, or fails them,
    and reminds finance of refunds past due, or escalates them."""
    interval = service.settings.deadline_scan_interval_seconds

    async def resend_unsettled_instructions() -> None:
        while True:
            try:
                handled = BATCH
                while handled == BATCH:
                    async with service.work() as work:
                        handled = await service.resend_overdue(work, limit=BATCH)
                handled = BATCH
                while handled == BATCH:
                    async with service.work() as work:
                        handled = await service.remind_overdue_refunds(work, limit=BATCH)
            except Exception:  # the database may be away for a while: try again later
                logger.exception("settlement deadline scan failed")
            await asyncio.sleep(interval)

    return resend_unsettled_instructions
