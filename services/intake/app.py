"""The intake service: member cities apply for exchange funding."""

from fastapi import FastAPI

from services.intake.persistence import messaging, metadata
from shared.service import build_runtime, create_service_app
from shared.settings import IntakeSettings

DESCRIPTION = "Member cities apply for exchange funding: program catalog, members, applications."


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    runtime = build_runtime(settings or IntakeSettings(), metadata, messaging)
    return create_service_app(runtime, title="grantflow intake", description=DESCRIPTION)
