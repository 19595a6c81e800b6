"""The disbursement service: budgets, tranches and the finance systems."""

from fastapi import FastAPI

from services.disbursement.persistence import messaging, metadata
from shared.service import build_runtime, create_service_app
from shared.settings import DisbursementSettings

DESCRIPTION = "Budgets, reservations, tranches and the finance systems."


def create_app(settings: DisbursementSettings | None = None) -> FastAPI:
    runtime = build_runtime(settings or DisbursementSettings(), metadata, messaging)
    return create_service_app(runtime, title="grantflow disbursement", description=DESCRIPTION)
