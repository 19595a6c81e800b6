"""An applicant's application: drafts, checks, submission, withdrawal, revision, amendment.

Each use case reads, decides with ``domain``, writes through the store and publishes its
events and mail in the caller's unit of work: all of it commits together or not at all.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from services.intake import domain
from services.intake.domain import (
    DRAFT,
    PAID_OUT_STAGES,
    REVISION_STAGES,
    SUBMITTED,
    TERMINAL_STAGES,
    WITHDRAWN,
    Checked,
    DraftFields,
    PartnerInput,
    Pricing,
)
from services.intake.notifications import submitted_mail
from services.intake.persistence import ApplicationRecord, IntakeStore, MemberRecord
from services.intake.schemas import (
    AmendmentRequest,
    ApplicationList,
    ApplicationSummary,
    ApplicationView,
    ChecksView,
    ResubmitRequest,
)
from services.intake.service.base import IntakeBase, actor, draft_of, member_contacts
from shared.auth import Principal
from shared.contracts.envelope import deterministic_id
from shared.contracts.intake import (
    AmendmentRequested,
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    PartnerCity,
)
from shared.contracts.programs import ProgramRules
from shared.contracts.topics import (
    AMENDMENT_REQUESTED,
    APPLICATION_RESUBMITTED,
    APPLICATION_SUBMITTED,
    APPLICATION_WITHDRAWN,
)
from shared.errors import ConflictError, ForbiddenError, UnmetRulesError
from shared.service import Work


@dataclass(frozen=True)
class DraftCheck:
    checked: Checked
    member: MemberRecord


class Applications(IntakeBase):
    # Reading ---------------------------------------------------------------------------

    async def application(
        self, work: Work, principal: Principal, application_id: str
    ) -> ApplicationView:
        record = await self.visible_application(work, principal, application_id)
        return await self.application_view(work, record)

    async def applications(
        self,
        work: Work,
        principal: Principal,
        *,
        program_code: str | None,
        status: str | None,
        member_id: str | None,
        limit: int,
        offset: int,
    ) -> ApplicationList:
        if not principal.is_officer:
            if member_id is not None and member_id != principal.member_id:
                return ApplicationList(items=[], total=0, limit=limit, offset=offset)
            member_id = principal.member_id
        records, total = await IntakeStore(work.session).applications(
            member_id=member_id,
            program_code=program_code,
            status=status,
            limit=limit,
            offset=offset,
        )
        return ApplicationList(
            items=[ApplicationSummary.of(record) for record in records],
            total=total,
            limit=limit,
            offset=offset,
        )

    # Drafts ----------------------------------------------------------------------------

    def _known_program(self, draft: DraftFields) -> ProgramRules | None:
        rules = self.catalog.get(draft.program_code)
        if draft.program_code and rules is None:
            known = ", ".join(self.catalog.programs)
            # The catalog is the server's: a code the schema allows may name no program.
            raise UnmetRulesError.at(
                "program_code", f"there is no program {draft.program_code!r}; try {known}", "rule"
            )
        return rules

    async def create_draft(
        self, work: Work, principal: Principal, fields: DraftFields
    ) -> ApplicationView:
        store = IntakeStore(work.session)
        member = await self._calling_member(store, principal)
        rules = self._known_program(fields)
        if fields.contacts is None:
            fields = fields.merged(DraftFields(contacts=member_contacts(member)))
        record = ApplicationRecord(
            application_id=str(uuid.uuid4()),
            member_id=member.member_id,
            program_code=fields.program_code,
            cycle=rules.cycle if rules else None,
            title=fields.title,
            status=DRAFT,
            status_sequence=0,
            open_key=None,
            draft=fields.model_dump(mode="json"),
            draft_version=1,
            snapshot=None,
            catalog_version=None,
            revision=0,
            deadlines=[],
            action_required=None,
            amounts=None,
            awarded=False,
            withdrawal_requested_at=None,
            resubmitted_at_sequence=None,
            created_at=work.now,
            updated_at=work.now,
            submitted_at=None,
        )
        await store.insert_application(vars(record))
        return await self.application_view(work, record)

    async def _calling_member(self, store: IntakeStore, principal: Principal) -> MemberRecord:
        assert principal.member_id is not None
        member = await store.member(principal.member_id)
        if member is None:
            raise ForbiddenError(
                f"member {principal.member_id} is not registered with the network; "
                "ask a program officer to add it"
            )
        return member

    async def update_draft(
        self, work: Work, principal: Principal, application_id: str, changes: DraftFields
    ) -> ApplicationView:
        record = await self.visible_application(work, principal, application_id, for_update=True)
        if record.status != DRAFT:
            raise ConflictError(
                f"the application is {record.status}: only a draft can be edited "
                "(after a revision request, resubmit instead)"
            )
        draft = draft_of(record).merged(changes)
        rules = self._known_program(draft)
        values: dict[str, Any] = {
            "draft": draft.model_dump(mode="json"),
            "draft_version": record.draft_version + 1,
            "program_code": draft.program_code,
            "cycle": rules.cycle if rules else None,
            "title": draft.title,
            "updated_at": work.now,
        }
        await IntakeStore(work.session).update_application(application_id, values)
        return await self.application_view(work, dataclasses.replace(record, **values))

    async def _check_draft(
        self, work: Work, record: ApplicationRecord, *, look_for_open: bool = True
    ) -> DraftCheck:
        """The checks a submission would run now, including one open application per cycle.

        Submission skips the look-up: the unique index on ``open_key`` refuses the write.
        """
        store = IntakeStore(work.session)
        draft = draft_of(record)
        member = await store.member(record.member_id)
        if member is None:
            raise ForbiddenError(f"member {record.member_id} is not registered with the network")
        rules = self.catalog.get(draft.program_code)
        rates = (
            await store.rates_to(rules.currency, domain.draft_currencies(draft)) if rules else {}
        )
        checked = domain.check_submission(
            draft,
            member=domain.MemberFacts(
                member_id=member.member_id,
                name=member.name,
                country=member.country,
                membership_active=member.membership_active,
                good_standing=member.good_standing,
                standing_reason=member.standing_reason,
            ),
            rules=rules,
            rates=rates,
            today=work.now.date(),
            exchange_lead_days=self.catalog.exchange_lead_days,
        )
        if rules is not None and look_for_open:
            other = await store.open_application_id(
                domain.open_key(record.member_id, rules.code, rules.cycle)
            )
            if other is not None and other != record.application_id:
                one_open = domain.rule(
                    "program_code",
                    f"your city already has an open application ({other}) to {rules.code} "
                    f"for the {rules.cycle} cycle",
                )
                checked = dataclasses.replace(checked, problems=[*checked.problems, one_open])
        return DraftCheck(checked, member)

    async def preview(self, work: Work, principal: Principal, application_id: str) -> ChecksView:
        record = await self.visible_application(work, principal, application_id)
        if record.status != DRAFT:
            raise ConflictError(f"the application is already {record.status}")
        return ChecksView.of((await self._check_draft(work, record)).checked)

    # Submission ------------------------------------------------------------------------

    async def submit(
        self, work: Work, principal: Principal, application_id: str, draft_version: int | None
    ) -> ApplicationView:
        record = await self.visible_application(work, principal, application_id, for_update=True)
        if record.status != DRAFT:
            raise ConflictError(f"the application is already {record.status}")
        if draft_version is not None and draft_version != record.draft_version:
            raise ConflictError(
                f"the draft changed since version {draft_version} (it is now version "
                f"{record.draft_version}): preview the checks again"
            )
        check = await self._check_draft(work, record, look_for_open=False)
        checked = check.checked
        if not checked.ready:
            raise UnmetRulesError(checked.problems)
        assert checked.rules is not None and checked.pricing is not None
        rules, pricing = checked.rules, checked.pricing
        payload = _submission(record, check.member, rules, pricing)
        values: dict[str, Any] = {
            "status": SUBMITTED,
            "open_key": domain.open_key(check.member.member_id, rules.code, rules.cycle),
            "snapshot": {
                "submission": payload.model_dump(mode="json"),
                "budget_total": pricing.total.model_dump(mode="json"),
                "matching": pricing.matching.model_dump(mode="json"),
                "rates_used": pricing.rates_used,
                "revisions": [],
            },
            "catalog_version": rules.catalog_version,
            "cycle": rules.cycle,
            "submitted_at": work.now,
            "updated_at": work.now,
        }
        store = IntakeStore(work.session)
        try:
            await store.update_application(application_id, values)
        except IntegrityError as error:  # the member holds this cycle's one open slot
            raise ConflictError(
                f"your city already has an open application to {rules.code} "
                f"for the {rules.cycle} cycle"
            ) from error
        await work.publish(
            APPLICATION_SUBMITTED,
            payload,
            application_id=application_id,
            event_id=deterministic_id("application", application_id, "submitted"),
        )
        await work.mail(submitted_mail(payload), kind="submitted")
        detail = {"catalog_version": rules.catalog_version, "requested": str(pricing.requested)}
        return await self._acted(work, principal, record, values, "submitted", detail)

    # After submission: withdraw, resubmit, amend -----------------------------------------

    async def withdraw(
        self, work: Work, principal: Principal, application_id: str, reason: str
    ) -> ApplicationView:
        record = await self.visible_application(work, principal, application_id, for_update=True)
        if record.status in TERMINAL_STAGES:
            raise ConflictError(f"the application is already {record.status}")
        values: dict[str, Any]
        if record.status == DRAFT:
            # Nothing was started for a draft: it is simply set aside.
            values = {"status": WITHDRAWN, "updated_at": work.now}
        else:
            if record.withdrawal_requested_at is not None:
                raise ConflictError("withdrawal was already requested; the workflow is undoing it")
            await work.publish(
                APPLICATION_WITHDRAWN,
                ApplicationWithdrawn(
                    application_id=application_id, member_id=record.member_id, reason=reason
                ),
                application_id=application_id,
                event_id=deterministic_id("application", application_id, "withdrawn"),
            )
            values = {"withdrawal_requested_at": work.now, "updated_at": work.now}
        await IntakeStore(work.session).update_application(application_id, values)
        detail = {"reason": reason}
        return await self._acted(work, principal, record, values, "withdrawal_requested", detail)

    async def resubmit(
        self, work: Work, principal: Principal, application_id: str, changes: ResubmitRequest
    ) -> ApplicationView:
        record = await self.visible_application(work, principal, application_id, for_update=True)
        if record.status not in REVISION_STAGES:
            raise ConflictError(
                f"the application is {record.status}: resubmit only after a revision request"
            )
        if record.resubmitted_at_sequence == record.status_sequence:
            raise ConflictError("this revision was already resubmitted; the review runs again")
        assert record.snapshot is not None
        submission = record.snapshot["submission"]
        rules = ProgramRules.model_validate(submission["rules"])
        draft = draft_of(record).merged(
            DraftFields.model_validate(changes.model_dump(exclude_unset=True))
        )
        store = IntakeStore(work.session)
        checked = domain.check_resubmission(
            draft,
            rules=rules,
            member_country=submission["member_country"],
            rates=await store.rates_to(rules.currency, domain.draft_currencies(draft)),
        )
        if not checked.ready:
            raise UnmetRulesError(checked.problems)
        pricing = checked.pricing
        assert pricing is not None and draft.summary
        revision = record.revision + 1
        values: dict[str, Any] = {
            "draft": draft.model_dump(mode="json"),
            "revision": revision,
            "snapshot": {
                **record.snapshot,
                "revisions": [
                    *record.snapshot.get("revisions", []),
                    {
                        "revision": revision,
                        "at": work.now.isoformat(),
                        "requested": pricing.requested.model_dump(mode="json"),
                        "budget_total": pricing.total.model_dump(mode="json"),
                        "matching": pricing.matching.model_dump(mode="json"),
                        "budget_lines": [line.model_dump(mode="json") for line in pricing.lines],
                        "rates_used": pricing.rates_used,
                    },
                ],
            },
            "resubmitted_at_sequence": record.status_sequence,
            "updated_at": work.now,
        }
        await store.update_application(application_id, values)
        await work.publish(
            APPLICATION_RESUBMITTED,
            ApplicationResubmitted(
                application_id=application_id,
                member_id=record.member_id,
                revision=revision,
                requested=pricing.requested,
                summary=draft.summary,
                budget_lines=pricing.lines,
            ),
            application_id=application_id,
            event_id=deterministic_id("application", application_id, "resubmitted", str(revision)),
        )
        detail = {"revision": revision, "requested": str(pricing.requested)}
        return await self._acted(work, principal, record, values, "resubmitted", detail)

    async def request_amendment(
        self, work: Work, principal: Principal, application_id: str, request: AmendmentRequest
    ) -> ApplicationView:
        record = await self.visible_application(work, principal, application_id, for_update=True)
        if record.status in TERMINAL_STAGES | PAID_OUT_STAGES or not record.awarded:
            raise ConflictError(
                f"the application is {record.status}: amendments are possible after an award "
                "and before the final payment"
            )
        assert record.snapshot is not None
        draft = draft_of(record)
        assert draft.exchange_start and draft.exchange_end
        problems = domain.check_amendment(
            rules=ProgramRules.model_validate(record.snapshot["submission"]["rules"]),
            current_start=draft.exchange_start,
            current_end=draft.exchange_end,
            new_start=request.new_exchange_start,
            new_end=request.new_exchange_end,
            new_award=request.new_award,
            cancel_exchange=request.cancel_exchange,
        )
        if problems:
            raise UnmetRulesError(problems)
        amendment_id = str(uuid.uuid4())
        await work.publish(
            AMENDMENT_REQUESTED,
            AmendmentRequested(
                application_id=application_id,
                member_id=record.member_id,
                amendment_id=amendment_id,
                new_exchange_start=request.new_exchange_start,
                new_exchange_end=request.new_exchange_end,
                new_award=request.new_award,
                cancel_exchange=request.cancel_exchange,
                reason=request.reason,
            ),
            application_id=application_id,
            event_id=deterministic_id("application", application_id, "amendment", amendment_id),
        )
        values: dict[str, Any] = {"updated_at": work.now}
        await IntakeStore(work.session).update_application(application_id, values)
        detail = {
            "amendment_id": amendment_id,
            **request.model_dump(mode="json", exclude_unset=True),
        }
        return await self._acted(work, principal, record, values, "amendment_requested", detail)

    async def _acted(
        self,
        work: Work,
        principal: Principal,
        record: ApplicationRecord,
        values: dict[str, Any],
        kind: str,
        detail: dict[str, Any],
    ) -> ApplicationView:
        """The applicant's action joins the application's requests; the view after it."""
        await IntakeStore(work.session).add_action(
            record.application_id, kind, actor(principal), detail, work.now
        )
        return await self.application_view(work, dataclasses.replace(record, **values))


def _submission(
    record: ApplicationRecord, member: MemberRecord, rules: ProgramRules, pricing: Pricing
) -> ApplicationSubmitted:
    draft = draft_of(record)
    assert draft.partner and draft.delegation and draft.contacts
    assert draft.focus_area and draft.title and draft.summary
    assert draft.exchange_start and draft.exchange_end and draft.matching_cash
    assert draft.matching_in_kind
    return ApplicationSubmitted(
        application_id=record.application_id,
        member_id=member.member_id,
        member_name=member.name,
        member_country=member.country,
        member_in_good_standing=member.good_standing,
        program_code=rules.code,
        cycle=rules.cycle,
        focus_area=draft.focus_area,
        title=draft.title,
        summary=draft.summary,
        objectives=draft.objectives,
        partner=_partner_city(draft.partner),
        other_partners=[_partner_city(partner) for partner in draft.other_partners or ()],
        exchange_start=draft.exchange_start,
        exchange_end=draft.exchange_end,
        adults=draft.delegation.adults,
        youth=draft.delegation.youth,
        budget_lines=pricing.lines,
        requested=pricing.requested,
        matching_cash=draft.matching_cash,
        matching_in_kind=draft.matching_in_kind,
        contact_emails=[contact.email for contact in draft.contacts],
        expected_outcomes=draft.expected_outcomes.planned() if draft.expected_outcomes else None,
        rules=rules,
    )


def _partner_city(partner: PartnerInput) -> PartnerCity:
    return PartnerCity(
        name=partner.name,
        country=partner.country,
        contact_name=partner.contact_name,
        contact_email=partner.contact_email,
    )
