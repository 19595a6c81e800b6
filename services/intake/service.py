"""The intake use cases: one function per action, inside the caller's unit of work.

Routes and subscribers open the transaction and commit it; a use case reads, decides with
``domain``, writes through ``persistence`` and adds its events to the outbox, so the state
change, the event and the mail it causes commit together or not at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake import domain
from services.intake import persistence as db
from services.intake.catalog import Catalog
from services.intake.domain import (
    DRAFT,
    REVISION_STAGES,
    SUBMITTED,
    TERMINAL_STAGES,
    WITHDRAWN,
    Checked,
    ConflictError,
    DraftFields,
    ForbiddenError,
    MemberFacts,
    NotFoundError,
    Problem,
    RuleViolationError,
)
from services.intake.notifications import (
    partner_request_mail,
    reminder_mail,
    status_mail,
    submitted_mail,
)
from services.intake.schemas import (
    ActionEntry,
    AmendmentRequest,
    ApplicationSummary,
    ApplicationView,
    ChecksView,
    MemberCreate,
    MemberUpdate,
    MemberView,
    PartnerAnswer,
    ProblemView,
    ResubmitRequest,
    SisterCity,
    StatusEntry,
    SubmittedView,
)
from shared.auth import Principal, can_see_member
from shared.contracts.envelope import Envelope, deterministic_id, new_envelope
from shared.contracts.intake import (
    AmendmentRequested,
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    PartnerCity,
    PartnerConfirmed,
)
from shared.contracts.money import MINOR_UNIT_EXPONENT
from shared.contracts.programs import ProgramRules
from shared.contracts.reporting import MemberStandingChanged
from shared.contracts.topics import (
    AMENDMENT_REQUESTED,
    APPLICATION_RESUBMITTED,
    APPLICATION_SUBMITTED,
    APPLICATION_WITHDRAWN,
    PARTNER_CONFIRMED,
)
from shared.contracts.workflows import (
    Amounts,
    ApplicationStatusChanged,
    Deadline,
    ReminderDue,
    RequestPartnerConfirmation,
)
from shared.mail import Mail
from shared.messaging.deadletter import PoisonMessage
from shared.messaging.outbox import Outbox

PRODUCER = "intake"
Clock = Callable[[], datetime]


@dataclass
class Intake:
    """What the use cases need, built once by ``create_app``."""

    catalog: Catalog
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    link_secret: str
    public_url: str
    clock: Clock

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def today(self) -> date:
        return self.now().date()

    async def notify(
        self, session: AsyncSession, mail: Mail, recipients: list[str], kind: str
    ) -> None:
        if not recipients:
            return
        await db.queue_notification(
            session,
            application_id=mail.application_id,
            kind=kind,
            recipients=sorted(set(recipients)),
            subject=mail.subject[:300],
            body=mail.body,
            at=self.now(),
        )


def actor(principal: Principal) -> str:
    return f"{principal.role.value}:{principal.subject}"


# --- idempotency ----------------------------------------------------------------------


def fingerprint(method: str, path: str, body: BaseModel | None) -> str:
    """What makes two requests "the same": method, path and the parsed body."""
    canonical = json.dumps(
        body.model_dump(mode="json", exclude_unset=True) if body is not None else None,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def idempotency_scope(principal: Principal) -> str:
    return f"{principal.role.value}:{principal.member_id or principal.subject}"


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


async def idempotent(
    session: AsyncSession,
    intake: Intake,
    *,
    scope: str,
    key: str | None,
    request_fingerprint: str,
    action: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
    refuses_repeats: bool = False,
) -> Outcome:
    """Run ``action`` once per key; a repeat replays the first answer, another body is a 409.

    Only successful answers are kept: a refused request may be corrected and sent again
    with the same key. An action that ``refuses_repeats`` raises ConflictError when its
    work is done already (an application cannot be submitted twice): the stored answer is
    then read only on that refusal, which saves a read on every first request.
    """
    if key is None:
        return Outcome(*await action())
    if not refuses_repeats:
        stored = await db.get_idempotency_key(session, scope, key)
        if stored is not None:
            return _replay(stored, request_fingerprint)
    try:
        status_code, body = await action()
        await db.save_idempotency_key(
            session, scope, key, request_fingerprint, status_code, body, intake.now()
        )
    except ConflictError:
        # A repeat, or a concurrent request with the same key that won the race (the
        # application's row lock made this one wait, and it now finds the work done):
        # answer as the first did.
        stored = await _stored_key(session, scope, key)
        if stored is not None:
            return _replay(stored, request_fingerprint)
        raise
    except IntegrityError as error:
        raise ConflictError(
            "this Idempotency-Key belongs to another request, finished or still running; "
            "repeat that request as it was, or use a new key"
        ) from error
    return Outcome(status_code, body)


async def _stored_key(session: AsyncSession, scope: str, key: str) -> dict[str, Any] | None:
    try:
        return await db.get_idempotency_key(session, scope, key)
    except SQLAlchemyError:  # the transaction failed (e.g. a unique index refused a write)
        return None


def _replay(stored: dict[str, Any], request_fingerprint: str) -> Outcome:
    if stored["fingerprint"] != request_fingerprint:
        raise ConflictError(
            "this Idempotency-Key was already used for a different request; use a new key"
        )
    return Outcome(int(stored["status_code"]), dict(stored["response"]), replayed=True)


# --- loading with authorization -------------------------------------------------------


async def visible_application(
    session: AsyncSession, principal: Principal, application_id: str, *, for_update: bool = False
) -> db.ApplicationRecord:
    """The application if the caller may see it; otherwise the same 404 as a missing one."""
    record = await db.get_application(session, application_id, for_update=for_update)
    if record is None or not can_see_member(principal, record.member_id):
        raise NotFoundError(f"there is no application {application_id}")
    return record


async def visible_member(
    session: AsyncSession, principal: Principal, member_id: str, *, for_update: bool = False
) -> db.MemberRecord:
    record = await db.get_member(session, member_id, for_update=for_update)
    if record is None or not can_see_member(principal, member_id):
        raise NotFoundError(f"there is no member {member_id}")
    return record


async def _calling_member(session: AsyncSession, principal: Principal) -> db.MemberRecord:
    assert principal.member_id is not None
    member = await db.get_member(session, principal.member_id)
    if member is None:
        raise ForbiddenError(
            f"member {principal.member_id} is not registered with the network; "
            "ask a program officer to add it"
        )
    return member


def member_facts(member: db.MemberRecord) -> MemberFacts:
    return MemberFacts(
        member_id=member.member_id,
        name=member.name,
        country=member.country,
        membership_active=member.membership_active,
        good_standing=member.good_standing,
        standing_reason=member.standing_reason,
    )


def _draft(record: db.ApplicationRecord) -> DraftFields:
    return DraftFields.model_validate(record.draft)


def _contacts(record: db.ApplicationRecord) -> list[str]:
    return [contact.email for contact in _draft(record).contacts or ()]


def _title(record: db.ApplicationRecord) -> str:
    return record.title or f"application {record.application_id}"


def _snapshot_rules(record: db.ApplicationRecord) -> ProgramRules:
    assert record.snapshot is not None
    return ProgramRules.model_validate(record.snapshot["submission"]["rules"])


# --- drafts ---------------------------------------------------------------------------


def _known_program(intake: Intake, draft: DraftFields) -> ProgramRules | None:
    rules = intake.catalog.get(draft.program_code)
    if draft.program_code and rules is None:
        known = ", ".join(intake.catalog.programs)
        raise RuleViolationError(
            [Problem("program_code", f"there is no program {draft.program_code!r}; try {known}")]
        )
    return rules


async def create_draft(
    session: AsyncSession, intake: Intake, principal: Principal, fields: DraftFields
) -> db.ApplicationRecord:
    member = await _calling_member(session, principal)
    rules = _known_program(intake, fields)
    if fields.contacts is None:
        contacts = [domain.Contact.model_validate(c) for c in member.contacts]
        fields = fields.merged(DraftFields(contacts=contacts))
    now = intake.now()
    application_id = str(uuid.uuid4())
    await db.insert_application(
        session,
        {
            "application_id": application_id,
            "member_id": member.member_id,
            "program_code": fields.program_code,
            "cycle": rules.cycle if rules else None,
            "title": fields.title,
            "status": DRAFT,
            "status_sequence": 0,
            "open_key": None,
            "draft": fields.model_dump(mode="json"),
            "draft_version": 1,
            "snapshot": None,
            "catalog_version": None,
            "revision": 0,
            "deadlines": [],
            "action_required": None,
            "amounts": None,
            "awarded": False,
            "created_at": now,
            "updated_at": now,
        },
    )
    record = await db.get_application(session, application_id)
    assert record is not None
    return record


async def update_draft(
    session: AsyncSession,
    intake: Intake,
    principal: Principal,
    application_id: str,
    changes: DraftFields,
) -> db.ApplicationRecord:
    record = await visible_application(session, principal, application_id, for_update=True)
    if record.status != DRAFT:
        raise ConflictError(
            f"the application is {record.status}: only a draft can be edited "
            "(after a revision request, resubmit instead)"
        )
    draft = _draft(record).merged(changes)
    rules = _known_program(intake, draft)
    await db.update_application(
        session,
        application_id,
        {
            "draft": draft.model_dump(mode="json"),
            "draft_version": record.draft_version + 1,
            "program_code": draft.program_code,
            "cycle": rules.cycle if rules else None,
            "title": draft.title,
            "updated_at": intake.now(),
        },
    )
    return await visible_application(session, principal, application_id)


@dataclass(frozen=True)
class DraftCheck:
    checked: Checked
    member: db.MemberRecord
    open_conflict: Problem | None = None

    @property
    def problems(self) -> list[Problem]:
        extra = [self.open_conflict] if self.open_conflict else []
        return [*self.checked.problems, *extra]


async def check_draft(
    session: AsyncSession,
    intake: Intake,
    record: db.ApplicationRecord,
    *,
    look_for_open: bool = True,
) -> DraftCheck:
    """The checks a submission would run now, including one open application per cycle.

    Submission skips the look-up: the unique index on ``open_key`` refuses the write anyway.
    """
    draft = _draft(record)
    member = await db.get_member(session, record.member_id)
    if member is None:
        raise ForbiddenError(f"member {record.member_id} is not registered with the network")
    rules = intake.catalog.get(draft.program_code)
    rates = (
        await db.rates_to(session, rules.currency, domain.draft_currencies(draft)) if rules else {}
    )
    checked = domain.check_submission(
        draft,
        member=member_facts(member),
        rules=rules,
        rates=rates,
        today=intake.today(),
        exchange_lead_days=intake.catalog.exchange_lead_days,
    )
    if rules is not None and look_for_open:
        other = await db.open_application_id(
            session, domain.open_key(record.member_id, rules.code, rules.cycle)
        )
        if other is not None and other != record.application_id:
            return DraftCheck(checked, member, _one_open_problem(rules, other))
    return DraftCheck(checked, member)


def _one_open_problem(rules: ProgramRules, other: str) -> Problem:
    return Problem(
        "program_code",
        f"your city already has an open application ({other}) to {rules.code} "
        f"for the {rules.cycle} cycle",
    )


async def preview(
    session: AsyncSession, intake: Intake, principal: Principal, application_id: str
) -> DraftCheck:
    record = await visible_application(session, principal, application_id)
    if record.status != DRAFT:
        raise ConflictError(f"the application is already {record.status}")
    return await check_draft(session, intake, record)


# --- submission -----------------------------------------------------------------------


async def submit(
    session: AsyncSession,
    intake: Intake,
    principal: Principal,
    application_id: str,
    draft_version: int | None,
) -> db.ApplicationRecord:
    record = await visible_application(session, principal, application_id, for_update=True)
    if record.status != DRAFT:
        raise ConflictError(f"the application is already {record.status}")
    if draft_version is not None and draft_version != record.draft_version:
        raise ConflictError(
            f"the draft changed since version {draft_version} (it is now version "
            f"{record.draft_version}): preview the checks again"
        )
    check = await check_draft(session, intake, record, look_for_open=False)
    checked = check.checked
    if not checked.ready:
        raise RuleViolationError(checked.problems)
    assert checked.rules is not None and checked.pricing is not None
    rules, pricing = checked.rules, checked.pricing
    draft = _draft(record)
    member = check.member
    assert draft.partner and draft.delegation and draft.contacts
    assert draft.focus_area and draft.title and draft.summary
    assert draft.exchange_start and draft.exchange_end and draft.matching_cash
    assert draft.matching_in_kind
    payload = ApplicationSubmitted(
        application_id=application_id,
        member_id=member.member_id,
        member_name=member.name,
        member_country=member.country,
        member_in_good_standing=member.good_standing,
        program_code=rules.code,
        cycle=rules.cycle,
        focus_area=draft.focus_area,
        title=draft.title,
        summary=draft.summary,
        partner=PartnerCity(
            name=draft.partner.name,
            country=draft.partner.country,
            contact_name=draft.partner.contact_name,
            contact_email=draft.partner.contact_email,
        ),
        exchange_start=draft.exchange_start,
        exchange_end=draft.exchange_end,
        adults=draft.delegation.adults,
        youth=draft.delegation.youth,
        budget_lines=pricing.lines,
        requested=pricing.requested,
        matching_cash=draft.matching_cash,
        matching_in_kind=draft.matching_in_kind,
        contact_emails=[contact.email for contact in draft.contacts],
        rules=rules,
    )
    now = intake.now()
    snapshot = {
        "submission": payload.model_dump(mode="json"),
        "budget_total": pricing.total.model_dump(mode="json"),
        "matching": pricing.matching.model_dump(mode="json"),
        "rates_used": pricing.rates_used,
        "revisions": [],
    }
    values: dict[str, Any] = {
        "status": SUBMITTED,
        "open_key": domain.open_key(member.member_id, rules.code, rules.cycle),
        "snapshot": snapshot,
        "catalog_version": rules.catalog_version,
        "cycle": rules.cycle,
        "submitted_at": now,
        "updated_at": now,
    }
    try:
        await db.update_application(session, application_id, values)
    except IntegrityError as error:  # the member holds this cycle's one open slot
        raise ConflictError(
            f"your city already has an open application to {rules.code} for the {rules.cycle} cycle"
        ) from error
    envelope: Envelope[BaseModel] = new_envelope(
        payload,
        producer=PRODUCER,
        application_id=application_id,
        event_id=deterministic_id("application", application_id, "submitted"),
    )
    await intake.outbox.add(session, APPLICATION_SUBMITTED, envelope)
    await db.add_action(
        session,
        application_id,
        "submitted",
        actor(principal),
        {"catalog_version": rules.catalog_version, "requested": str(pricing.requested)},
        now,
    )
    await intake.notify(
        session,
        submitted_mail(draft.title, rules.name, application_id, pricing.requested),
        payload.contact_emails,
        "submitted",
    )
    return dataclasses.replace(record, **values)


# --- after submission: withdraw, resubmit, amend --------------------------------------


async def withdraw(
    session: AsyncSession, intake: Intake, principal: Principal, application_id: str, reason: str
) -> db.ApplicationRecord:
    record = await visible_application(session, principal, application_id, for_update=True)
    now = intake.now()
    if record.status in TERMINAL_STAGES:
        raise ConflictError(f"the application is already {record.status}")
    if record.status == DRAFT:
        # Nothing was started for a draft: it is simply set aside.
        await db.update_application(
            session, application_id, {"status": WITHDRAWN, "updated_at": now}
        )
    else:
        if record.withdrawal_requested_at is not None:
            raise ConflictError("withdrawal was already requested; the workflow is undoing it")
        payload = ApplicationWithdrawn(
            application_id=application_id, member_id=record.member_id, reason=reason
        )
        await intake.outbox.add(
            session,
            APPLICATION_WITHDRAWN,
            new_envelope(
                payload,
                producer=PRODUCER,
                application_id=application_id,
                event_id=deterministic_id("application", application_id, "withdrawn"),
            ),
        )
        await db.update_application(
            session, application_id, {"withdrawal_requested_at": now, "updated_at": now}
        )
    await db.add_action(
        session, application_id, "withdrawal_requested", actor(principal), {"reason": reason}, now
    )
    return await visible_application(session, principal, application_id)


async def resubmit(
    session: AsyncSession,
    intake: Intake,
    principal: Principal,
    application_id: str,
    changes: ResubmitRequest,
) -> db.ApplicationRecord:
    record = await visible_application(session, principal, application_id, for_update=True)
    if record.status not in REVISION_STAGES:
        raise ConflictError(
            f"the application is {record.status}: resubmit only after a revision request"
        )
    if record.resubmitted_at_sequence == record.status_sequence:
        raise ConflictError("this revision was already resubmitted; the review runs again")
    rules = _snapshot_rules(record)
    draft = _draft(record).merged(
        DraftFields.model_validate(changes.model_dump(exclude_unset=True))
    )
    assert draft.budget_lines and draft.requested and draft.matching_cash
    assert draft.matching_in_kind and draft.summary
    rates = await db.rates_to(session, rules.currency, domain.draft_currencies(draft))
    problems, pricing = domain.check_money(
        budget_lines=draft.budget_lines,
        requested=draft.requested,
        matching_cash=draft.matching_cash,
        matching_in_kind=draft.matching_in_kind,
        currency=rules.currency,
        max_award=rules.max_award,
        min_matching_bp=rules.min_matching_bp,
        rates=rates,
    )
    if problems or pricing is None:
        raise RuleViolationError(problems)
    revision = record.revision + 1
    payload = ApplicationResubmitted(
        application_id=application_id,
        member_id=record.member_id,
        revision=revision,
        requested=pricing.requested,
        summary=draft.summary,
        budget_lines=pricing.lines,
    )
    now = intake.now()
    assert record.snapshot is not None
    snapshot = dict(record.snapshot)
    snapshot["revisions"] = [
        *snapshot.get("revisions", []),
        {
            "revision": revision,
            "at": now.isoformat(),
            "requested": pricing.requested.model_dump(mode="json"),
            "budget_total": pricing.total.model_dump(mode="json"),
            "matching": pricing.matching.model_dump(mode="json"),
            "budget_lines": [line.model_dump(mode="json") for line in pricing.lines],
            "rates_used": pricing.rates_used,
        },
    ]
    await db.update_application(
        session,
        application_id,
        {
            "draft": draft.model_dump(mode="json"),
            "revision": revision,
            "snapshot": snapshot,
            "resubmitted_at_sequence": record.status_sequence,
            "updated_at": now,
        },
    )
    await intake.outbox.add(
        session,
        APPLICATION_RESUBMITTED,
        new_envelope(
            payload,
            producer=PRODUCER,
            application_id=application_id,
            event_id=deterministic_id("application", application_id, "resubmitted", str(revision)),
        ),
    )
    await db.add_action(
        session,
        application_id,
        "resubmitted",
        actor(principal),
        {"revision": revision, "requested": str(pricing.requested)},
        now,
    )
    return await visible_application(session, principal, application_id)


async def request_amendment(
    session: AsyncSession,
    intake: Intake,
    principal: Principal,
    application_id: str,
    request: AmendmentRequest,
) -> db.ApplicationRecord:
    record = await visible_application(session, principal, application_id, for_update=True)
    if record.status in TERMINAL_STAGES or not record.awarded:
        raise ConflictError(
            f"the application is {record.status}: amendments are possible after an award "
            "and before close-out"
        )
    rules = _snapshot_rules(record)
    draft = _draft(record)
    assert draft.exchange_start and draft.exchange_end
    problems = domain.check_amendment(
        rules=rules,
        current_start=draft.exchange_start,
        current_end=draft.exchange_end,
        new_start=request.new_exchange_start,
        new_end=request.new_exchange_end,
        new_award=request.new_award,
        cancel_exchange=request.cancel_exchange,
    )
    if problems:
        raise RuleViolationError(problems)
    amendment_id = str(uuid.uuid4())
    payload = AmendmentRequested(
        application_id=application_id,
        member_id=record.member_id,
        amendment_id=amendment_id,
        new_exchange_start=request.new_exchange_start,
        new_exchange_end=request.new_exchange_end,
        new_award=request.new_award,
        cancel_exchange=request.cancel_exchange,
        reason=request.reason,
    )
    await intake.outbox.add(
        session,
        AMENDMENT_REQUESTED,
        new_envelope(
            payload,
            producer=PRODUCER,
            application_id=application_id,
            event_id=deterministic_id("application", application_id, "amendment", amendment_id),
        ),
    )
    now = intake.now()
    await db.update_application(session, application_id, {"updated_at": now})
    await db.add_action(
        session,
        application_id,
        "amendment_requested",
        actor(principal),
        {"amendment_id": amendment_id, **request.model_dump(mode="json", exclude_unset=True)},
        now,
    )
    return await visible_application(session, principal, application_id)


# --- members and rates ----------------------------------------------------------------


async def create_member(
    session: AsyncSession, intake: Intake, member: MemberCreate
) -> db.MemberRecord:
    if await db.get_member(session, member.member_id) is not None:
        raise ConflictError(f"member {member.member_id} exists already")
    now = intake.now()
    values = member.model_dump(mode="json")
    await db.insert_member(
        session,
        {
            **values,
            "good_standing": True,
            "standing_reason": None,
            "standing_changed_at": None,
            "created_at": now,
            "updated_at": now,
        },
    )
    created = await db.get_member(session, member.member_id)
    assert created is not None
    return created


async def update_member(
    session: AsyncSession,
    intake: Intake,
    principal: Principal,
    member_id: str,
    changes: MemberUpdate,
) -> db.MemberRecord:
    await visible_member(session, principal, member_id, for_update=True)
    values = changes.model_dump(mode="json", exclude_unset=True)
    for name, value in values.items():
        if value is None and name != "state":
            raise RuleViolationError([Problem(name, f"{name} cannot be empty")])
    await db.update_member(session, member_id, {**values, "updated_at": intake.now()})
    return await visible_member(session, principal, member_id)


async def set_rate(
    session: AsyncSession,
    intake: Intake,
    principal: Principal,
    from_currency: str,
    to_currency: str,
    rate: str,
) -> dict[str, Any]:
    problems = [
        Problem(name, f"{code} is not a currency this service knows (ISO-4217, e.g. KES)")
        for name, code in (("from_currency", from_currency), ("to_currency", to_currency))
        if code not in MINOR_UNIT_EXPONENT
    ]
    if from_currency == to_currency:
        problems.append(Problem("to_currency", "a currency converts to itself at 1"))
    try:
        domain.rate_fraction(rate)
    except ValueError as error:
        problems.append(Problem("rate", str(error)))
    if problems:
        raise RuleViolationError(problems)
    await db.save_rate(session, from_currency, to_currency, rate, actor(principal), intake.now())
    saved = await db.get_rate(session, from_currency, to_currency)
    assert saved is not None
    return saved


# --- events from other services -------------------------------------------------------


async def apply_status_change(
    session: AsyncSession, intake: Intake, event: Envelope[ApplicationStatusChanged]
) -> None:
    """Status read model and history; an older event than the current one adds to history only."""
    change = event.payload
    record = await db.get_application(session, change.application_id, for_update=True)
    if record is None or record.status == DRAFT:
        raise PoisonMessage(f"no submitted application {change.application_id}")
    deadlines = [deadline.model_dump(mode="json") for deadline in change.deadlines]
    if not await db.has_status(session, record.application_id, change.sequence):
        await db.insert_status(
            session,
            {
                "application_id": record.application_id,
                "sequence": change.sequence,
                "stage": change.stage,
                "previous_stage": change.previous_stage,
                "reason": change.reason,
                "action_required": change.action_required,
                "deadlines": deadlines,
                "occurred_at": event.occurred_at,
                "event_id": str(event.event_id),
            },
        )
    if change.sequence <= record.status_sequence:
        return
    awarded = (
        record.awarded
        or change.stage in domain.AWARD_STAGES
        or (change.amounts is not None and change.amounts.awarded is not None)
    )
    values: dict[str, Any] = {
        "status": change.stage,
        "status_sequence": change.sequence,
        "deadlines": deadlines,
        "action_required": change.action_required,
        "awarded": awarded,
        "updated_at": intake.now(),
    }
    if change.amounts is not None:
        values["amounts"] = change.amounts.model_dump(mode="json")
    if change.stage in TERMINAL_STAGES:
        values["open_key"] = None
    await db.update_application(session, record.application_id, values)
    await intake.notify(
        session,
        status_mail(
            application_id=record.application_id,
            title=_title(record),
            stage=change.stage,
            reason=change.reason,
            action_required=change.action_required,
            deadlines=deadlines,
        ),
        _contacts(record),
        "status_changed",
    )


async def remind(session: AsyncSession, intake: Intake, event: Envelope[ReminderDue]) -> None:
    reminder = event.payload
    record = await db.get_application(session, reminder.application_id)
    if record is None:
        raise PoisonMessage(f"no application {reminder.application_id}")
    await intake.notify(
        session,
        reminder_mail(
            application_id=record.application_id,
            title=_title(record),
            about=reminder.about,
            due_at=reminder.due_at,
            message=reminder.message,
        ),
        _contacts(record),
        "reminder",
    )


async def apply_member_standing(
    session: AsyncSession, intake: Intake, event: Envelope[MemberStandingChanged]
) -> None:
    """Member standing read model; an event older than the last one applied is ignored."""
    change = event.payload
    member = await db.get_member(session, change.member_id, for_update=True)
    if member is None:
        raise PoisonMessage(f"no member {change.member_id}")
    if member.standing_changed_at is not None and event.occurred_at <= member.standing_changed_at:
        return
    await db.update_member(
        session,
        change.member_id,
        {
            "good_standing": change.good_standing,
            "standing_reason": None if change.good_standing else change.reason,
            "standing_changed_at": event.occurred_at,
            "updated_at": intake.now(),
        },
    )


def partner_link_url(intake: Intake, link_id: str, due_at: datetime) -> str:
    token = domain.sign_partner_link(intake.link_secret, link_id, due_at)
    return f"{intake.public_url.rstrip('/')}/v1/partner-confirmations/{token}"


async def request_partner_confirmation(
    session: AsyncSession, intake: Intake, event: Envelope[RequestPartnerConfirmation]
) -> None:
    """Email the partner a one-time link; a re-sent command re-sends it, or the answer."""
    command = event.payload
    record = await db.get_application(session, command.application_id)
    if record is None or record.snapshot is None:
        raise PoisonMessage(f"no submitted application {command.application_id}")
    link = await db.partner_link_for_command(session, record.application_id, command.command_id)
    if link is not None and link["answered_at"] is not None:
        # The answer was given but the workflow asks again: its event must have been lost.
        await db.count_partner_link_request(session, link["link_id"])
        attempt = str(link["requests"] + 1)
        await _publish_partner_answer(session, intake, link, attempt, causation=event)
        return
    if link is None:
        link_id = uuid.uuid4().hex
        await db.insert_partner_link(
            session,
            {
                "link_id": link_id,
                "application_id": record.application_id,
                "command_id": command.command_id,
                "partner_city": command.partner_city,
                "partner_email": command.partner_contact_email,
                "due_at": command.due_at,
                "created_at": intake.now(),
                "requests": 1,
            },
        )
        await db.add_action(
            session,
            record.application_id,
            "partner_confirmation_requested",
            "workflow",
            {"partner_city": command.partner_city, "due_at": command.due_at.isoformat()},
            intake.now(),
        )
        due_at = command.due_at
    else:
        link_id = link["link_id"]
        due_at = link["due_at"]
        await db.count_partner_link_request(session, link_id)
    draft = _draft(record)
    member = await db.get_member(session, record.member_id)
    assert draft.exchange_start and draft.exchange_end
    await intake.notify(
        session,
        partner_request_mail(
            application_id=record.application_id,
            partner_city=command.partner_city,
            member_name=member.name if member else record.member_id,
            title=_title(record),
            exchange_start=draft.exchange_start,
            exchange_end=draft.exchange_end,
            link=partner_link_url(intake, link_id, due_at),
            due_at=due_at,
        ),
        [command.partner_contact_email],
        "partner_confirmation",
    )


async def _publish_partner_answer(
    session: AsyncSession,
    intake: Intake,
    link: dict[str, Any],
    attempt: str,
    causation: Envelope[Any] | None = None,
) -> None:
    payload = PartnerConfirmed(
        application_id=link["application_id"],
        partner_contact_email=link["partner_email"],
        confirmed=bool(link["confirmed"]),
        note=link["note"],
    )
    await intake.outbox.add(
        session,
        PARTNER_CONFIRMED,
        new_envelope(
            payload,
            producer=PRODUCER,
            application_id=link["application_id"],
            event_id=deterministic_id(
                "application", link["application_id"], "partner-answer", link["link_id"], attempt
            ),
            causation=causation,
        ),
    )


# --- the partner's answer -------------------------------------------------------------


@dataclass(frozen=True)
class PartnerLinkInfo:
    link: dict[str, Any]
    application: db.ApplicationRecord
    member_name: str


async def partner_link(session: AsyncSession, intake: Intake, token: str) -> PartnerLinkInfo:
    """The link behind a genuine token; a forged or unknown one is a 404."""
    parsed = domain.read_partner_link(intake.link_secret, token)
    link = await db.get_partner_link(session, parsed.link_id, for_update=True) if parsed else None
    if link is None:
        raise NotFoundError("this confirmation link is not valid")
    record = await db.get_application(session, link["application_id"])
    assert record is not None
    member = await db.get_member(session, record.member_id)
    return PartnerLinkInfo(link, record, member.name if member else record.member_id)


async def answer_partner(
    session: AsyncSession, intake: Intake, token: str, answer: PartnerAnswer
) -> PartnerLinkInfo:
    """Record the partner's answer once and publish it; a second use is a 409."""
    info = await partner_link(session, intake, token)
    link = info.link
    if link["answered_at"] is not None:
        said = "confirmed" if link["confirmed"] else "declined"
        raise ConflictError(
            f"this link was already used: the partner {said} on "
            f"{link['answered_at'].date().isoformat()}"
        )
    now = intake.now()
    if now > link["due_at"]:
        raise domain.GoneError(
            f"this link expired on {link['due_at'].isoformat()}; "
            "the applicant's program officer can still record your answer"
        )
    confirmed = answer.answer == "confirm"
    if not await db.answer_partner_link(session, link["link_id"], confirmed, answer.note, now):
        raise ConflictError("this link was already used")
    answered = {**link, "answered_at": now, "confirmed": confirmed, "note": answer.note}
    await _publish_partner_answer(session, intake, answered, "1")
    await db.add_action(
        session,
        link["application_id"],
        "partner_confirmed" if confirmed else "partner_declined",
        f"partner:{link['partner_email']}",
        {"note": answer.note} if answer.note else {},
        now,
    )
    return PartnerLinkInfo(answered, info.application, info.member_name)


# --- views ----------------------------------------------------------------------------


async def application_view(session: AsyncSession, record: db.ApplicationRecord) -> ApplicationView:
    # No status event was applied yet (sequence 0) means no history yet: save the query.
    history = (
        await db.list_status_history(session, record.application_id)
        if record.status_sequence
        else []
    )
    actions = await db.list_actions(session, record.application_id)
    submitted = None
    if record.snapshot is not None and record.submitted_at is not None:
        submission = record.snapshot["submission"]
        revisions = record.snapshot.get("revisions") or []
        latest = revisions[-1] if revisions else None
        submitted = SubmittedView(
            submitted_at=record.submitted_at,
            catalog_version=record.catalog_version or submission["rules"]["catalog_version"],
            cycle=submission["cycle"],
            budget_lines=(latest or submission)["budget_lines"],
            budget_total=(latest or record.snapshot)["budget_total"],
            matching=(latest or record.snapshot)["matching"],
            requested=(latest or submission)["requested"],
            rates_used=(latest or record.snapshot)["rates_used"],
            rules=submission["rules"],
        )
    return ApplicationView(
        application_id=record.application_id,
        member_id=record.member_id,
        program_code=record.program_code,
        cycle=record.cycle,
        status=record.status,
        draft_version=record.draft_version,
        revision=record.revision,
        fields=_draft(record),
        submitted=submitted,
        deadlines=[Deadline.model_validate(item) for item in record.deadlines],
        action_required=record.action_required,
        amounts=Amounts.model_validate(record.amounts) if record.amounts else None,
        withdrawal_requested_at=record.withdrawal_requested_at,
        history=[
            StatusEntry(
                sequence=item["sequence"],
                stage=item["stage"],
                previous_stage=item["previous_stage"],
                reason=item["reason"],
                action_required=item["action_required"],
                deadlines=[Deadline.model_validate(d) for d in item["deadlines"]],
                occurred_at=item["occurred_at"],
            )
            for item in history
        ],
        requests=[
            ActionEntry(
                kind=item["kind"],
                actor=item["actor"],
                detail=item["detail"],
                occurred_at=item["occurred_at"],
            )
            for item in actions
        ],
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def application_summary(record: db.ApplicationRecord) -> ApplicationSummary:
    return ApplicationSummary(
        application_id=record.application_id,
        member_id=record.member_id,
        program_code=record.program_code,
        title=record.title,
        status=record.status,
        created_at=record.created_at,
        submitted_at=record.submitted_at,
        updated_at=record.updated_at,
    )


def member_view(member: db.MemberRecord) -> MemberView:
    return MemberView(
        member_id=member.member_id,
        name=member.name,
        state=member.state,
        country=member.country,
        contacts=[domain.Contact.model_validate(item) for item in member.contacts],
        sister_cities=[SisterCity.model_validate(item) for item in member.sister_cities],
        membership_active=member.membership_active,
        good_standing=member.good_standing,
        standing_reason=member.standing_reason,
        standing_changed_at=member.standing_changed_at,
    )


def checks_view(check: DraftCheck) -> ChecksView:
    pricing = check.checked.pricing
    problems = check.problems
    return ChecksView(
        ready=not problems and pricing is not None,
        problems=[ProblemView(field=p.field, message=p.message) for p in problems],
        budget_total=pricing.total if pricing else None,
        expected_request=(pricing.total - pricing.matching) if pricing else None,
        rates_used=pricing.rates_used if pricing else {},
    )
