"""What the intake API accepts and answers: request bodies, and views built from records.

Every request body forbids unknown fields (mass assignment is a 422) and carries an
example, which the authorization test uses to call every route.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StringConstraints,
)
from pydantic.json_schema import SkipJsonSchema

from services.intake.domain import (
    BudgetLineInput,
    Checked,
    Contact,
    CountryCode,
    DraftFields,
    ExpectedOutcomes,
    Input,
    LongText,
    PartnerInput,
    ShortText,
    window_is_open,
)
from services.intake.persistence import (
    ActionRecord,
    ApplicationRecord,
    PartnerLinkRecord,
    StatusRecord,
)
from shared.contracts.base import HAS_THREE, MAX_COUNT, IsoDate, stripped, whole_number
from shared.contracts.intake import BudgetLine
from shared.contracts.money import ExchangeRate, Money
from shared.contracts.programs import ProgramRules
from shared.contracts.workflows import Amounts, Deadline
from shared.views import View, copy_of

MemberId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]
# Three characters once stripped, and the schema says so (the pattern).
Reason = Annotated[
    str,
    StringConstraints(min_length=3, max_length=2000, pattern=HAS_THREE),
    AfterValidator(stripped),
]


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


# --- programs -------------------------------------------------------------------------


class ProgramView(BaseModel):
    code: str
    name: str
    window_open: bool = Field(description="Applications are accepted today.")
    rules: ProgramRules

    @classmethod
    def of(cls, rules: ProgramRules, today: date) -> ProgramView:
        return cls(
            code=rules.code, name=rules.name, window_open=window_is_open(rules, today), rules=rules
        )


class ProgramList(BaseModel):
    catalog_version: str
    programs: list[ProgramView]
    total: int = Field(description="Programs in the catalog, on every page.")
    limit: int
    offset: int


# --- members --------------------------------------------------------------------------


class SisterCity(Input):
    name: ShortText
    country: CountryCode


_MEMBER_EXAMPLE: dict[str, Any] = {
    "member_id": "boulder-co",
    "name": "Boulder",
    "state": "CO",
    "country": "US",
    "contacts": [{"name": "Sam Lee", "email": "international@boulder.example.org"}],
    "sister_cities": [{"name": "Mante", "country": "MX"}, {"name": "Lhasa", "country": "CN"}],
}


class MemberCreate(Input):
    model_config = _example(_MEMBER_EXAMPLE)

    member_id: MemberId
    name: ShortText = Field(description="The member city.")
    state: Annotated[str, StringConstraints(max_length=100)] | None = None
    country: CountryCode
    contacts: list[Contact] = Field(min_length=1, max_length=10)
    sister_cities: list[SisterCity] = Field(default_factory=list, max_length=100)
    membership_active: StrictBool = True


# A field that may be left out but not cleared: null is refused (422), and the schema says so.
Unset = SkipJsonSchema[None]


class MemberUpdate(Input):
    """What a program officer may change; standing follows report events and is not set here.
    Only ``state`` can be cleared (null)."""

    model_config = _example({"membership_active": False})

    name: ShortText | Unset = None
    state: Annotated[str, StringConstraints(max_length=100)] | None = None
    country: CountryCode | Unset = None
    contacts: Annotated[list[Contact], Field(min_length=1, max_length=10)] | Unset = None
    sister_cities: Annotated[list[SisterCity], Field(max_length=100)] | Unset = None
    membership_active: StrictBool | Unset = None


class MemberView(View):
    member_id: str
    name: str
    state: str | None
    country: str
    contacts: list[Contact]
    sister_cities: list[SisterCity]
    membership_active: bool
    good_standing: bool
    standing_reason: str | None
    standing_changed_at: datetime | None


class MemberList(BaseModel):
    items: list[MemberView]
    total: int
    limit: int
    offset: int


# --- exchange rates -------------------------------------------------------------------


class RateUpdate(Input):
    model_config = _example({"rate": "0.0077"})

    rate: ExchangeRate = Field(
        description="Units of the target currency per unit of the source currency, as "
        "decimal text (never a float)."
    )


class RateView(View):
    from_currency: str
    to_currency: str
    rate: str
    updated_at: datetime
    updated_by: str


class RateList(BaseModel):
    items: list[RateView]
    total: int
    limit: int
    offset: int


class StatusEntry(View):
    sequence: int
    stage: str
    previous_stage: str | None
    reason: str | None
    action_required: str | None
    deadlines: list[Deadline]
    occurred_at: datetime


class ActionEntry(View):
    kind: str = Field(examples=["submitted", "withdrawal_requested", "amendment_requested"])
    actor: str
    detail: dict[str, Any]
    occurred_at: datetime


class SubmittedView(BaseModel):
    submitted_at: datetime
    catalog_version: str
    cycle: str
    budget_lines: list[BudgetLine] = Field(description="Converted at the recorded rates.")
    budget_total: Money
    matching: Money
    requested: Money
    rates_used: dict[str, str] = Field(description="Rate per budget currency, as decimal text.")
    rules: ProgramRules = Field(description="The rules the application was submitted under.")

    @classmethod
    def of(cls, record: ApplicationRecord) -> SubmittedView | None:
        """The submission, with the money of its latest revision."""
        snapshot = record.snapshot
        if snapshot is None or record.submitted_at is None:
            return None
        submission = snapshot["submission"]
        revisions = snapshot.get("revisions") or []
        latest = revisions[-1] if revisions else None
        return cls(
            submitted_at=record.submitted_at,
            catalog_version=record.catalog_version or submission["rules"]["catalog_version"],
            cycle=submission["cycle"],
            budget_lines=(latest or submission)["budget_lines"],
            budget_total=(latest or snapshot)["budget_total"],
            matching=(latest or snapshot)["matching"],
            requested=(latest or submission)["requested"],
            rates_used=(latest or snapshot)["rates_used"],
            rules=submission["rules"],
        )


class ApplicationView(BaseModel):
    application_id: str
    member_id: str
    program_code: str | None
    cycle: str | None
    status: str = Field(description="'draft', 'submitted', or the workflow's latest stage.")
    draft_version: int
    revision: int
    fields: DraftFields
    partners: list[PartnerInput] = Field(
        description="Every partner city named so far, the first first (``fields.partner``, "
        "then ``fields.other_partners``)."
    )
    submitted: SubmittedView | None
    deadlines: list[Deadline]
    action_required: str | None
    amounts: Amounts | None
    withdrawal_requested_at: datetime | None
    history: list[StatusEntry]
    requests: list[ActionEntry] = Field(description="What the applicant and partner asked.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(
        cls,
        record: ApplicationRecord,
        history: list[StatusRecord],
        actions: list[ActionRecord],
    ) -> ApplicationView:
        fields = DraftFields.model_validate(record.draft)
        return copy_of(
            cls,
            record,
            fields=fields,
            partners=fields.every_partner(),
            submitted=SubmittedView.of(record),
            amounts=Amounts.model_validate(record.amounts) if record.amounts else None,
            history=[StatusEntry.of(status) for status in history],
            requests=[ActionEntry.of(action) for action in actions],
        )


class ApplicationSummary(View):
    application_id: str
    member_id: str
    program_code: str | None
    title: str | None
    status: str
    created_at: datetime
    submitted_at: datetime | None
    updated_at: datetime


class ApplicationList(BaseModel):
    items: list[ApplicationSummary]
    total: int
    limit: int
    offset: int


class ProblemView(BaseModel):
    field: str
    message: str


class ChecksView(BaseModel):
    ready: bool = Field(description="Submitting now would be accepted.")
    problems: list[ProblemView]
    budget_total: Money | None = None
    expected_request: Money | None = Field(
        default=None, description="Budget total minus matching funds, in the program currency."
    )
    rates_used: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def of(cls, checked: Checked) -> ChecksView:
        pricing = checked.pricing
        return cls(
            ready=checked.ready,
            problems=[ProblemView(field=p.field, message=p.message) for p in checked.problems],
            budget_total=pricing.total if pricing else None,
            expected_request=pricing.expected_request if pricing else None,
            rates_used=pricing.rates_used if pricing else {},
        )


# Bounds before the whole-number validator, or the schema loses them (as "ge" and "le").
DraftVersion = Annotated[int, Field(ge=1, le=MAX_COUNT), Strict(), BeforeValidator(whole_number)]


class SubmitRequest(Input):
    model_config = _example({"draft_version": 1})

    draft_version: DraftVersion | None = Field(
        default=None,
        description="The draft version whose checks you previewed; 409 if it changed since.",
    )


class WithdrawRequest(Input):
    model_config = _example({"reason": "The delegation cannot travel this year."})

    reason: Reason


class ResubmitRequest(Input):
    """What may change after a revision request; the program rules stay those of the snapshot."""

    model_config = _example(
        {
            "summary": "Smaller delegation; the water utility pays the interpreters.",
            "requested": {"amount_minor": 908_000, "currency": "USD"},
            "matching_cash": {"amount_minor": 500_000, "currency": "USD"},
        }
    )

    summary: LongText | None = None
    objectives: LongText | None = None
    budget_lines: list[BudgetLineInput] | None = Field(default=None, min_length=1, max_length=100)
    requested: Money | None = None
    matching_cash: Money | None = None
    matching_in_kind: Money | None = None
    expected_outcomes: ExpectedOutcomes | None = None


class AmendmentRequest(Input):
    model_config = _example(
        {
            "new_exchange_start": "2027-06-07",
            "new_exchange_end": "2027-06-21",
            "reason": "The hosts moved the water forum by four weeks.",
        }
    )

    new_exchange_start: IsoDate | None = None
    new_exchange_end: IsoDate | None = None
    new_award: Money | None = None
    cancel_exchange: StrictBool = False
    reason: Reason


# --- the partner's answer -------------------------------------------------------------


class PartnerAnswer(Input):
    model_config = _example({"answer": "confirm", "note": "We will host the delegation."})

    answer: Literal["confirm", "decline"]
    note: Annotated[str, StringConstraints(max_length=2000), AfterValidator(stripped)] | None = None


class PartnerAnswered(BaseModel):
    application_id: str
    confirmed: bool
    answered_at: datetime

    @classmethod
    def of(cls, link: PartnerLinkRecord) -> PartnerAnswered:
        assert link.answered_at is not None
        return cls(
            application_id=link.application_id,
            confirmed=bool(link.confirmed),
            answered_at=link.answered_at,
        )
