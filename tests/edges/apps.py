"""Every service's HTTP app in process, on a migrated SQLite database of its own.

The apps are served without their lifespan: no broker, no relay, no background jobs. A
route's events go to the outbox, which the relay would publish; nothing an HTTP caller
sees depends on Kafka. The workflows app answers its lifecycle routes from a real
Temporal server (the dev server the end-to-end tests use), connected when the app starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from shared.auth import Role, mint_token
from shared.migrations import upgrade
from shared.settings import ServiceSettings
from tests.support.browser import Startup, WithoutBroker

SERVICES = ("intake", "review", "disbursement", "reporting", "workflows")

# Who calls: the demo member intake seeds, a reviewer, and a program officer.
MEMBER_ID = "demo-member-1"
REVIEWER_ID = "rev-demo-1"
ROLES: dict[str, dict[str, Any]] = {
    "applicant": {"role": Role.APPLICANT, "member_id": MEMBER_ID},
    "reviewer": {"role": Role.REVIEWER, "reviewer_id": REVIEWER_ID},
    "officer": {"role": Role.PROGRAM_OFFICER},
}


class InProcess(WithoutBroker):
    """A service's app served without its broker, with the settings its tokens are minted by."""

    def __init__(
        self, app: FastAPI, settings: ServiceSettings, startup: Sequence[Startup] = ()
    ) -> None:
        super().__init__(app, startup)
        self.settings = settings

    def headers(self, role: str) -> dict[str, str]:
        token = mint_token(self.settings, **ROLES[role])
        return {"Authorization": f"Bearer {token}"}


def _settings_of(service: str, state_dir: Path) -> dict[str, Any]:
    database = state_dir / f"{service}.db"
    return {
        "environment": "test",
        "database_url": f"sqlite+aiosqlite:///{database}",
        "state_dir": state_dir,
        "log_level": "WARNING",
        "log_format": "text",
    }


def build(service: str, state_dir: Path, *, temporal_address: str | None = None) -> InProcess:
    """``service``'s app as ``create_app`` composes it, on a freshly migrated database."""
    common = _settings_of(service, state_dir)
    upgrade(service, common["database_url"])
    if service == "intake":
        from services.intake.app import create_app as intake_app
        from services.intake.settings import IntakeSettings

        intake = IntakeSettings(**common, public_url="http://intake.test", seed_demo_data=True)
        app = InProcess(intake_app(intake), intake, [_seed_intake])
    elif service == "review":
        from services.review.app import create_app as review_app
        from services.review.settings import ReviewSettings

        review = ReviewSettings(**common)
        app = InProcess(review_app(review), review)
    elif service == "disbursement":
        from services.disbursement.app import create_app as disbursement_app
        from services.disbursement.settings import DisbursementSettings

        disbursement = DisbursementSettings(**common)
        app = InProcess(disbursement_app(disbursement), disbursement)
    elif service == "reporting":
        from services.reporting.app import create_app as reporting_app
        from services.reporting.settings import ReportingSettings

        reporting = ReportingSettings(**common)
        app = InProcess(reporting_app(reporting), reporting)
    elif service == "workflows":
        from workflows.funding.worker import connect_temporal
        from workflows.funding.worker import create_app as workflows_app
        from workflows.settings import WorkflowsSettings

        assert temporal_address is not None
        workflows = WorkflowsSettings(**common, temporal_address=temporal_address)

        async def connect(app: FastAPI) -> None:
            app.state.temporal = await connect_temporal(workflows)

        app = InProcess(workflows_app(workflows), workflows, [connect])
    else:
        raise ValueError(service)
    return app


async def _seed_intake(app: FastAPI) -> None:
    from services.intake.seed import seed_demo_data

    await seed_demo_data(app.state.service)
