"""The portal's application form: a draft as flat form fields and back.

Each input is named after the field path the API's problems use (``partner.country``,
``budget_lines[1].amount``), so a check's sentence lands next to its input; a draft is
read through the API's own JSON validation, so the portal accepts exactly what it does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final, get_args

from pydantic import ValidationError

from services.intake.domain import MAX_OTHER_PARTNERS, BudgetCategory, DraftFields, FocusArea
from shared.contracts.money import MINOR_UNIT_EXPONENT
from shared.errors import Problem
from shared.web.forms import Problems, major_units, minor_units

PARTNER: Final = ("name", "country", "contact_name", "contact_email")
DELEGATION: Final = ("adults", "youth")
OUTCOMES: Final = ("agreements", "trade_leads", "students_exchanged", "follow_up_projects")
LINE: Final = ("category", "description", "amount")
CONTACT: Final = ("name", "email", "role")
MONEY: Final = ("requested", "matching_cash", "matching_in_kind")
TEXTS: Final = ("program_code", "focus_area", "title", "summary", "objectives")
DATES: Final = ("exchange_start", "exchange_end")
CURRENCIES: Final = sorted(MINOR_UNIT_EXPONENT)
CATEGORIES: Final = get_args(BudgetCategory)
FOCUS_AREAS: Final = get_args(FocusArea)
# Empty rows offered below the filled ones; saving offers more.
SPARE_LINES: Final = 2
SPARE_CONTACTS: Final = 1
# Partners beyond the first: as many fieldsets as are filled and one more, at least two,
# so that an exchange among four cities fits the first form.
SPARE_PARTNERS: Final = 1
MIN_PARTNER_ROWS: Final = 2
# Groups of inputs whose own problems ("add at least one budget line") show at the group;
# "partners": a partner the program requires is missing ("a partner in MX is required").
GROUPS: Final = (
    "partner",
    "partners",
    "other_partners",
    "delegation",
    "budget_lines",
    "expected_outcomes",
    "contacts",
)

LABELS: Final = {
    "program_code": "The program",
    "focus_area": "The focus area",
    "title": "The title",
    "summary": "The summary",
    "objectives": "The objectives",
    "exchange_start": "The first day of the exchange",
    "exchange_end": "The last day of the exchange",
    "partner.name": "The partner city",
    "partner.country": "The partner's country",
    "partner.contact_name": "The partner's contact",
    "partner.contact_email": "The partner contact's email",
    "delegation.adults": "The number of adults",
    "delegation.youth": "The number of young people",
    "requested": "The amount requested",
    "matching_cash": "The matching funds in cash",
    "matching_in_kind": "The matching funds in kind",
}


class DraftFormError(Exception):
    def __init__(self, problems: Problems) -> None:
        super().__init__("; ".join(m for messages in problems.values() for m in messages))
        self.problems = problems


@dataclass
class DraftForm:
    """What the draft form shows: the values, and how many budget and contact rows."""

    values: dict[str, str]
    lines: int
    contacts: int
    partners: int = MIN_PARTNER_ROWS
    inputs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inputs = [
            *TEXTS,
            *DATES,
            *MONEY,
            *(f"partner.{name}" for name in PARTNER),
            *(f"other_partners[{i}].{name}" for i in range(self.partners) for name in PARTNER),
            *(f"delegation.{name}" for name in DELEGATION),
            *(f"expected_outcomes.{name}" for name in OUTCOMES),
            *(f"budget_lines[{i}].{name}" for i in range(self.lines) for name in LINE),
            *(f"contacts[{i}].{name}" for i in range(self.contacts) for name in CONTACT),
        ]


def _rows(values: dict[str, str], prefix: str) -> int:
    found = [int(m.group(1)) for k in values if (m := re.match(rf"{prefix}\[(\d+)\]", k))]
    return max(found, default=-1) + 1


def form_of(fields: DraftFields, currency: str = "USD") -> DraftForm:
    """A saved draft as the form shows it."""
    values: dict[str, str] = {}
    data = fields.model_dump(mode="json")
    for name in (*TEXTS, *DATES):
        values[name] = "" if data[name] is None else str(data[name])
    for group, names in (
        ("partner", PARTNER),
        ("delegation", DELEGATION),
        ("expected_outcomes", OUTCOMES),
    ):
        for name in names:
            value = (data[group] or {}).get(name)
            values[f"{group}.{name}"] = "" if value is None else str(value)
    for name in MONEY:
        money = getattr(fields, name)
        values[name] = "" if money is None else major_units(money.amount_minor, money.currency)
        values[f"{name}.currency"] = money.currency if money else currency
    for i, line in enumerate(fields.budget_lines or ()):
        values[f"budget_lines[{i}].category"] = line.category
        values[f"budget_lines[{i}].description"] = line.description
        values[f"budget_lines[{i}].amount"] = major_units(
            line.amount.amount_minor, line.amount.currency
        )
        values[f"budget_lines[{i}].amount.currency"] = line.amount.currency
    for i, partner in enumerate(fields.other_partners or ()):
        for name in PARTNER:
            values[f"other_partners[{i}].{name}"] = getattr(partner, name)
    for i, contact in enumerate(fields.contacts or ()):
        values[f"contacts[{i}].name"] = contact.name
        values[f"contacts[{i}].email"] = contact.email
        values[f"contacts[{i}].role"] = contact.role or ""
    return shown(values)


def shown(values: dict[str, str]) -> DraftForm:
    """The form for ``values`` (as saved, or as typed), with its spare rows."""
    return DraftForm(
        values,
        lines=_rows(values, "budget_lines") + SPARE_LINES,
        contacts=_rows(values, "contacts") + SPARE_CONTACTS,
        partners=min(
            max(_rows(values, "other_partners") + SPARE_PARTNERS, MIN_PARTNER_ROWS),
            MAX_OTHER_PARTNERS,
        ),
    )


class _Reader:
    def __init__(self, form: dict[str, str]) -> None:
        self.form = form
        self.problems = Problems()

    def text(self, name: str) -> str | None:
        return self.form.get(name, "").strip() or None

    def whole(self, name: str) -> int | None:
        text = self.text(name)
        if text is None:
            return None
        if not text.isdigit():
            self.problems.add(name, f"{label(name)} should be a whole number such as 4")
            return None
        return int(text)

    def money(self, name: str) -> dict[str, Any] | None:
        text = self.text(name)
        if text is None:
            return None
        currency = self.form.get(f"{name}.currency", "USD")
        try:
            return {"amount_minor": minor_units(text, currency), "currency": currency}
        except ValueError as error:
            self.problems.add(name, f"{label(name)} {error}")
            return None

    def group(self, prefix: str, names: tuple[str, ...], numbers: bool = False) -> Any:
        read = self.whole if numbers else self.text
        values = {name: read(f"{prefix}.{name}") for name in names}
        values = {name: value for name, value in values.items() if value is not None}
        return values or None

    def filled_rows(self, prefix: str, names: tuple[str, ...]) -> tuple[list[Any], list[int]]:
        """The rows of ``prefix`` with anything typed, and where each stands in the form
        (problems are named after the rows shown)."""
        filled, rows = [], []
        for i in range(_rows(self.form, prefix)):
            group = self.group(f"{prefix}[{i}]", names)
            if group:
                filled.append(group)
                rows.append(i)
        return filled, rows


def draft_of(form: dict[str, str]) -> DraftFields:
    """The draft a posted form describes; ``DraftFormError`` says what is wrong, by field.

    Every field is sent, so one emptied in the form is cleared in the draft; empty rows of
    budget lines and contacts are left out, and problems are named after the rows shown.
    """
    reader = _Reader(form)
    data: dict[str, Any] = {name: reader.text(name) for name in (*TEXTS, *DATES)}
    data["partner"] = reader.group("partner", PARTNER)
    data["delegation"] = reader.group("delegation", DELEGATION, numbers=True)
    data["expected_outcomes"] = reader.group("expected_outcomes", OUTCOMES, numbers=True)
    for name in MONEY:
        data[name] = reader.money(name)
    lines, line_rows = [], []
    for i in range(_rows(form, "budget_lines")):
        row = f"budget_lines[{i}]"
        line = {
            "category": reader.text(f"{row}.category"),
            "description": reader.text(f"{row}.description"),
            "amount": reader.money(f"{row}.amount"),
        }
        if reader.text(f"{row}.description") or reader.text(f"{row}.amount"):
            lines.append({k: v for k, v in line.items() if v is not None})
            line_rows.append(i)
    contacts, contact_rows = reader.filled_rows("contacts", CONTACT)
    partners, partner_rows = reader.filled_rows("other_partners", PARTNER)
    data["other_partners"] = partners or None
    data["budget_lines"] = lines or None
    data["contacts"] = contacts or None
    if reader.problems:
        raise DraftFormError(reader.problems)
    try:
        return DraftFields.model_validate_json(json.dumps(data))
    except ValidationError as error:
        problems = Problems()
        for name, messages in Problems.of_validation(error).items():
            row = _shown_row(name, "budget_lines", line_rows)
            row = _shown_row(
                _shown_row(row, "contacts", contact_rows), "other_partners", partner_rows
            )
            for message in messages:
                problems.add(row, human(name, message, row))
        raise DraftFormError(problems) from error


def _shown_row(name: str, prefix: str, rows: list[int]) -> str:
    match = re.match(rf"{prefix}\[(\d+)\]", name)
    if not match:
        return name
    return f"{prefix}[{rows[int(match.group(1))]}]{name[match.end() :]}"


def label(name: str) -> str:
    """How a sentence names a field: ``budget_lines[0].amount`` -> "Budget line 1's amount"."""
    if name in LABELS:
        return LABELS[name]
    # The partners beyond the first are numbered after it: other_partners[0] is "Partner 2".
    for prefix, words, first in (
        ("budget_lines", "Budget line", 1),
        ("contacts", "Contact", 1),
        ("other_partners", "Partner", 2),
    ):
        match = re.match(rf"{prefix}\[(\d+)\]\.?(\w*)", name)
        if match:
            part = match.group(2).replace("_", " ")
            return f"{words} {int(match.group(1)) + first}" + (f"'s {part}" if part else "")
    return "The " + name.replace("_", " ").replace(".", " ")


def human(name: str, message: str, shown: str = "") -> str:
    """A check's sentence with the field's path (``name``) replaced by words a person uses;
    ``shown``: the input it is shown at, when that is another row than the API's."""
    words = label(shown or name)
    if message.endswith("String should have at least 1 character"):
        return f"{words} is required"
    if message.startswith(name):
        return f"{words}{message[len(name) :].lstrip(':')}"
    return message


def problems_of(found: list[Problem] | list[Any]) -> Problems:
    """The service's problems (or a checks preview's), worded for people."""
    problems = Problems()
    for problem in found:
        problems.add(problem.field, human(problem.field, problem.message))
    return problems


def options(values: tuple[str, ...]) -> list[tuple[str, str]]:
    """A select's options: each value, and its words."""
    return [(value, value.replace("_", " ").capitalize()) for value in values]
