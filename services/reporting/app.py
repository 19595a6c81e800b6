"""The reporting service: post-exchange reports, standing and program analytics."""

from fastapi import FastAPI

from services.reporting.persistence import messaging, metadata
from shared.service import build_runtime, create_service_app
from shared.settings import ReportingSettings

DESCRIPTION = "Post-exchange reports, member standing and program analytics."


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    runtime = build_runtime(settings or ReportingSettings(), metadata, messaging)
    return create_service_app(runtime, title="grantflow reporting", description=DESCRIPTION)
