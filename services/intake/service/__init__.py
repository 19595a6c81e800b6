"""The intake use cases, one class composed of the service's areas.

Each use case takes a ``Work`` (one transaction, with the events and mail it causes) and
never commits: a route, a consumer or a job opens the work and commits it by leaving
``service.work()``.

- ``applications``: drafts, checks, submission, withdrawal, revision, amendment;
- ``idempotency``: an applicant's action repeated with the same Idempotency-Key;
- ``members``: the program catalog, member cities and exchange rates;
- ``status``: the lifecycle's status read model, reminders and member standing;
- ``partners``: the partner's confirmation through a one-time link;
- ``cycles``: a program cycle opening, which opens its budget in the ledger.
"""

from __future__ import annotations

from services.intake.service.applications import Applications
from services.intake.service.cycles import ProgramCycles
from services.intake.service.idempotency import IdempotentRequests, Outcome
from services.intake.service.members import MembersAndRates
from services.intake.service.partners import PartnerConfirmations, PartnerLinkInfo
from services.intake.service.status import StatusReadModel

__all__ = ["IntakeService", "Outcome", "PartnerLinkInfo"]


class IntakeService(
    Applications,
    IdempotentRequests,
    MembersAndRates,
    StatusReadModel,
    PartnerConfirmations,
    ProgramCycles,
):
    """Every use case of the intake service."""
