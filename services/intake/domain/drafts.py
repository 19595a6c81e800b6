"""The draft as the applicant writes it: ``DraftFields`` and the inputs it is made of.

A draft may leave anything out; the rules (``rules``) say what it must say before it is
submitted. ``DRAFT_EXAMPLE`` is a whole draft that passes them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from shared.contracts.base import EMAIL_PATTERN, HAS_TEXT, IsoDate, WholeNumber, stripped
from shared.contracts.intake import PlannedOutcomes
from shared.contracts.money import Money

FocusArea = Literal["business_and_trade", "youth_and_education", "community_development"]
BudgetCategory = Literal[
    "travel",
    "accommodation",
    "meals",
    "local_transport",
    "venue",
    "interpretation",
    "materials",
    "insurance",
    "administration",
    "other",
]
# As many as the submission carries (``ApplicationSubmitted.other_partners``).
MAX_OTHER_PARTNERS = 9

Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=254)]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
# Some text besides spaces: the schema says so too (the pattern), so that a text it allows is
# never refused for being empty once stripped. Lengths are of the text as sent (the schema's),
# and stripping comes after.
ShortText = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=HAS_TEXT), AfterValidator(stripped)
]
LongText = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(stripped)]


class Input(BaseModel):
    """What a caller may send: unknown fields (``status``, ``award``, ``score``) are an error,
    and so is a value of another JSON type than the schema's (lax mode would read ``false``
    as 0 and ``0`` as a date)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Contact(Input):
    name: ShortText
    email: Email
    role: Annotated[str, StringConstraints(max_length=100)] | None = None


class PartnerInput(Input):
    name: ShortText = Field(description="The partner sister city.")
    country: CountryCode = Field(description="ISO-3166 alpha-2 code of the partner's country.")
    contact_name: ShortText
    contact_email: Email


class Delegation(Input):
    adults: WholeNumber = Field(ge=0, le=1000)
    youth: WholeNumber = Field(default=0, ge=0, le=1000, description="Participants under 18.")


class BudgetLineInput(Input):
    category: BudgetCategory
    description: ShortText
    amount: Money = Field(description="In the currency it will be spent in.")


class ExpectedOutcomes(Input):
    agreements: WholeNumber = Field(default=0, ge=0, le=10_000)
    trade_leads: WholeNumber = Field(default=0, ge=0, le=10_000)
    students_exchanged: WholeNumber = Field(default=0, ge=0, le=10_000)
    follow_up_projects: WholeNumber = Field(default=0, ge=0, le=10_000)

    def planned(self) -> PlannedOutcomes:
        """As the submission carries them, named as the report will answer them."""
        return PlannedOutcomes(
            agreements_signed=self.agreements,
            trade_leads=self.trade_leads,
            students_exchanged=self.students_exchanged,
            follow_up_projects=self.follow_up_projects,
        )


# Passes every check with the seeded rate KES->USD 0.0077: 12,000 USD + 400,000 KES
# (3,080 USD) = 15,080 USD; matching 4,080 USD (27%); requested 11,000 USD.
DRAFT_EXAMPLE: dict[str, Any] = {
    "program_code": "AUPAP",
    "focus_area": "community_development",
    "title": "Clean water kiosks with Nairobi",
    "summary": "Denver and Nairobi water utilities exchange staff to plan three kiosks.",
    "partner": {
        "name": "Nairobi",
        "country": "KE",
        "contact_name": "Wanjiru Kamau",
        "contact_email": "partnerships@nairobi.example.org",
    },
    "exchange_start": "2027-05-10",
    "exchange_end": "2027-05-24",
    "delegation": {"adults": 6, "youth": 0},
    "budget_lines": [
        {
            "category": "travel",
            "description": "Flights DEN-NBO",
            "amount": {"amount_minor": 1_200_000, "currency": "USD"},
        },
        {
            "category": "accommodation",
            "description": "Guest house, 14 nights",
            "amount": {"amount_minor": 40_000_000, "currency": "KES"},
        },
    ],
    "requested": {"amount_minor": 1_100_000, "currency": "USD"},
    "matching_cash": {"amount_minor": 308_000, "currency": "USD"},
    "matching_in_kind": {"amount_minor": 100_000, "currency": "USD"},
    "objectives": "Plan three water kiosks and a maintenance cooperative.",
    "expected_outcomes": {"agreements": 1, "follow_up_projects": 2},
    "contacts": [{"name": "Ana Ruiz", "email": "ana.ruiz@denver.example.org"}],
}


class DraftFields(Input):
    """An application as the applicant writes it; a draft may leave anything out."""

    model_config = ConfigDict(json_schema_extra={"examples": [DRAFT_EXAMPLE]})

    program_code: Annotated[str, StringConstraints(max_length=40)] | None = None
    focus_area: FocusArea | None = None
    title: ShortText | None = None
    summary: LongText | None = None
    partner: PartnerInput | None = Field(default=None, description="The first partner city.")
    other_partners: list[PartnerInput] | None = Field(
        default=None,
        max_length=MAX_OTHER_PARTNERS,
        description="Partner cities beyond the first, for an exchange among several sister "
        "cities (a tri-lateral exchange); each confirms through its own link.",
    )
    exchange_start: IsoDate | None = None
    exchange_end: IsoDate | None = None
    delegation: Delegation | None = None
    budget_lines: list[BudgetLineInput] | None = Field(default=None, max_length=100)
    requested: Money | None = Field(default=None, description="In the program's currency.")
    matching_cash: Money | None = Field(default=None, description="In the program's currency.")
    matching_in_kind: Money | None = Field(default=None, description="In the program's currency.")
    objectives: LongText | None = None
    expected_outcomes: ExpectedOutcomes | None = None
    contacts: list[Contact] | None = Field(default=None, max_length=10)

    def merged(self, changes: DraftFields) -> DraftFields:
        """This draft with the fields ``changes`` sets (explicit nulls clear a field)."""
        values = self.model_dump()
        values.update(changes.model_dump(include=changes.model_fields_set))
        return DraftFields.model_validate(values)

    def every_partner(self) -> list[PartnerInput]:
        """The partners named so far, the first first."""
        return [*([self.partner] if self.partner else []), *(self.other_partners or ())]
