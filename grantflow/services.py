"""The processes of the system and their settings: the composition root's registry."""

from __future__ import annotations

from services.disbursement.settings import DisbursementSettings
from services.intake.settings import IntakeSettings
from services.reporting.settings import ReportingSettings
from services.review.settings import ReviewSettings
from shared.settings import ServiceSettings
from workflows.settings import WorkflowsSettings

SETTINGS_BY_SERVICE: dict[str, type[ServiceSettings]] = {
    cls.service_name: cls
    for cls in (
        IntakeSettings,
        ReviewSettings,
        DisbursementSettings,
        ReportingSettings,
        WorkflowsSettings,
    )
}
