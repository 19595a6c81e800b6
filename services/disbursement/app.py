"""The disbursement service: budgets, tranches and the finance systems."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from services.disbursement.api import router
from services.disbursement.consumers import consumers
from services.disbursement.jobs import settlement_deadline
from services.disbursement.persistence import messaging, metadata
from services.disbursement.service import DisbursementService
from services.disbursement.settings import DisbursementSettings
from shared.clock import Clock, utc_now
from shared.messaging.consumers import register_consumers
from shared.service import build_runtime, create_service_app

DESCRIPTION = "Budgets, reservations, tranches and the finance systems."

logger = logging.getLogger(__name__)


def create_app(settings: DisbursementSettings | None = None, *, clock: Clock = utc_now) -> FastAPI:
    settings = settings or DisbursementSettings()
    runtime = build_runtime(settings, metadata, messaging)
    service = DisbursementService(runtime, settings, clock=clock)
    register_consumers(service, consumers(service))
    runtime.add_job(settlement_deadline(service))
    app = create_service_app(
        runtime,
        service,
        title="grantflow disbursement",
        description=DESCRIPTION,
        routers=[router],
    )
    return app
