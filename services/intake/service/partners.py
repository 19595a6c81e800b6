"""The partners' confirmation: the workflow asks each partner city, intake mails each its
own one-time link, the partner answers through it, and intake publishes the answer.

Each answer is filed under its partner's confirmation (``domain.partner_confirmation_subject``),
so the command receipts answer a request that the workflow sends again with the same answer
and event id. A repeat before the partner answered gets nothing and sends no second mail:
the partner has its link.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime

from services.intake.domain import (
    partner_confirmation_subject,
    read_partner_link,
    sign_partner_link,
)
from services.intake.notifications import partner_request_mail
from services.intake.persistence import ApplicationRecord, IntakeStore, PartnerLinkRecord
from services.intake.schemas import PartnerAnswer
from services.intake.service.base import IntakeBase
from shared.contracts.envelope import Envelope, deterministic_id
from shared.contracts.intake import PartnerConfirmed
from shared.contracts.topics import PARTNER_CONFIRMED
from shared.contracts.workflows import RequestPartnerConfirmation
from shared.errors import ConflictError, GoneError, InvalidCommandError, NotFoundError
from shared.service import Work


@dataclass(frozen=True)
class PartnerLinkInfo:
    link: PartnerLinkRecord
    application: ApplicationRecord
    member_name: str


def _answer_id(link: PartnerLinkRecord) -> uuid.UUID:
    # "1": the id a link's answer has always had, so an answer published before answers
    # were filed is recognised (``migrations/versions/0004``).
    return deterministic_id("application", link.application_id, "partner-answer", link.link_id, "1")


class PartnerConfirmations(IntakeBase):
    async def request_partner_confirmation(
        self, work: Work, event: Envelope[RequestPartnerConfirmation]
    ) -> None:
        """Mail the partner its own one-time link (one per request: each partner of an
        application has its own); the answer comes back through ``answer_partner``.

        The receipts answer a repeat of this command; a request handled before intake kept
        receipts gets the answer if the partner gave it, and otherwise the mail again.
        """
        command = event.payload
        store = IntakeStore(work.session)
        record = await store.application(command.application_id)
        if record is None or record.snapshot is None:
            raise InvalidCommandError(f"no submitted application {command.application_id}")
        link = await store.partner_link_for_command(record.application_id, command.command_id)
        if link is not None and link.answered_at is not None:
            if await work.runtime.outbox.contains(work.session, str(_answer_id(link))):
                await work.answer_again(_subject(link))
            else:
                await self._publish_answer(work, link)
            return
        if link is not None and link.subject is None and work.subject is not None:
            # A link from before this request's receipt: its answer, when it comes, is
            # filed where the receipt now looks.
            await store.file_partner_link(link.link_id, work.subject)
            link = dataclasses.replace(link, subject=work.subject)
        if link is None:
            link = PartnerLinkRecord(
                link_id=uuid.uuid4().hex,
                application_id=record.application_id,
                command_id=command.command_id,
                partner_city=command.partner_city,
                partner_email=command.partner_contact_email,
                due_at=command.due_at,
                created_at=work.now,
                answered_at=None,
                confirmed=None,
                note=None,
                subject=work.subject,
            )
            await store.insert_partner_link(link)
            await store.add_action(
                record.application_id,
                "partner_confirmation_requested",
                "workflow",
                {
                    "partner_city": command.partner_city,
                    "partner_email": command.partner_contact_email,
                    "due_at": command.due_at.isoformat(),
                },
                work.now,
            )
        member = await store.member(record.member_id)
        mail = partner_request_mail(
            record,
            link,
            member_name=member.name if member else record.member_id,
            url=self.partner_link_url(link.link_id, link.due_at),
        )
        await work.mail(mail, kind="partner_confirmation")

    def partner_link_url(self, link_id: str, due_at: datetime) -> str:
        token = sign_partner_link(self.link_secret, link_id, due_at)
        return f"{self.public_url.rstrip('/')}/v1/partner-confirmations/{token}"

    async def partner_link(
        self, work: Work, token: str, *, for_update: bool = False
    ) -> PartnerLinkInfo:
        """The link behind a genuine token; a forged or unknown one is a 404."""
        parsed = read_partner_link(self.link_secret, token)
        store = IntakeStore(work.session)
        link = await store.partner_link(parsed.link_id, for_update=for_update) if parsed else None
        if link is None:
            raise NotFoundError("this confirmation link is not valid")
        record = await store.application(link.application_id)
        assert record is not None
        member = await store.member(record.member_id)
        return PartnerLinkInfo(link, record, member.name if member else record.member_id)

    async def answer_partner(
        self, work: Work, token: str, answer: PartnerAnswer
    ) -> PartnerLinkInfo:
        """Record the partner's answer once and publish it; a second use is a 409."""
        info = await self.partner_link(work, token, for_update=True)
        link = info.link
        if link.answered_at is not None:
            said = "confirmed" if link.confirmed else "declined"
            raise ConflictError(
                f"this link was already used: the partner {said} on "
                f"{link.answered_at.date().isoformat()}"
            )
        if work.now > link.due_at:
            raise GoneError(
                f"this link expired on {link.due_at.isoformat()}; "
                "the applicant's program officer can still record your answer"
            )
        confirmed = answer.answer == "confirm"
        store = IntakeStore(work.session)
        if not await store.answer_partner_link(link.link_id, confirmed, answer.note, work.now):
            raise ConflictError("this link was already used")
        answered = dataclasses.replace(
            link, answered_at=work.now, confirmed=confirmed, note=answer.note
        )
        await self._publish_answer(work, answered)
        await store.add_action(
            link.application_id,
            "partner_confirmed" if confirmed else "partner_declined",
            f"partner:{link.partner_email}",
            {"note": answer.note} if answer.note else {},
            work.now,
        )
        return dataclasses.replace(info, link=answered)

    async def _publish_answer(self, work: Work, link: PartnerLinkRecord) -> None:
        await work.publish(
            PARTNER_CONFIRMED,
            PartnerConfirmed(
                application_id=link.application_id,
                partner_contact_email=link.partner_email,
                confirmed=bool(link.confirmed),
                note=link.note,
            ),
            application_id=link.application_id,
            event_id=_answer_id(link),
            subject=_subject(link),
        )


def _subject(link: PartnerLinkRecord) -> str:
    """The subject of the request that made the link: its answer is filed there."""
    return link.subject or partner_confirmation_subject(link.application_id)
