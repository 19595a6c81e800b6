"""What every area of the intake use cases shares: the catalog, the store, who sees what."""

from __future__ import annotations

from services.intake.catalog import Catalog
from services.intake.domain import Contact, DraftFields
from services.intake.persistence import ApplicationRecord, IntakeStore, MemberRecord
from services.intake.schemas import ApplicationView
from shared.auth import Principal, can_see_member
from shared.clock import Clock, utc_now
from shared.errors import NotFoundError
from shared.service import Service, ServiceRuntime, Work


class IntakeBase(Service):
    """The intake service's parts, built once by ``create_app``."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        *,
        catalog: Catalog,
        link_secret: str,
        public_url: str,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(runtime, clock=clock)
        self.catalog = catalog
        self.link_secret = link_secret
        self.public_url = public_url

    async def visible_application(
        self, work: Work, principal: Principal, application_id: str, *, for_update: bool = False
    ) -> ApplicationRecord:
        """The application if the caller may see it; otherwise the same 404 as a missing one."""
        record = await IntakeStore(work.session).application(application_id, for_update=for_update)
        if record is None or not can_see_member(principal, record.member_id):
            raise NotFoundError(f"there is no application {application_id}")
        return record

    async def visible_member(
        self, work: Work, principal: Principal, member_id: str, *, for_update: bool = False
    ) -> MemberRecord:
        record = await IntakeStore(work.session).member(member_id, for_update=for_update)
        if record is None or not can_see_member(principal, member_id):
            raise NotFoundError(f"there is no member {member_id}")
        return record

    async def application_view(self, work: Work, record: ApplicationRecord) -> ApplicationView:
        store = IntakeStore(work.session)
        # No status event was applied yet (sequence 0) means no history yet: save the query.
        history = (
            await store.status_history(record.application_id) if record.status_sequence else []
        )
        return ApplicationView.of(record, history, await store.actions(record.application_id))


def actor(principal: Principal) -> str:
    return f"{principal.role.value}:{principal.subject}"


def draft_of(record: ApplicationRecord) -> DraftFields:
    return DraftFields.model_validate(record.draft)


def member_contacts(member: MemberRecord) -> list[Contact]:
    return [Contact.model_validate(contact) for contact in member.contacts]
