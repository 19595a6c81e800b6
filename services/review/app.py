"""The review service: reviewers work a queue of review tasks."""

from fastapi import FastAPI

from services.review.persistence import messaging, metadata
from shared.service import build_runtime, create_service_app
from shared.settings import ReviewSettings

DESCRIPTION = "Reviewers work a queue of review tasks: assignment, scores, recusals."


def create_app(settings: ReviewSettings | None = None) -> FastAPI:
    runtime = build_runtime(settings or ReviewSettings(), metadata, messaging)
    return create_service_app(runtime, title="grantflow review", description=DESCRIPTION)
