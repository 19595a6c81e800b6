"""The portal's post-exchange report: the form, and reporting's HTTP API behind it.

Reports belong to the reporting service: the portal reads, saves and submits them through
its API as the signed-in applicant (the same bearer token), so its rules and checks are
the API's own. The form's inputs are named after the paths reporting's problems name
(``activities[1].held_on``, ``spending[0].amount``), so each sentence lands next to its
input; only what a person types that is no number at all is refused here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.contracts.intake import BudgetLine
from shared.contracts.money import Money
from shared.contracts.reporting import AttachmentMeta, ReportContent, ReportOutcomes
from shared.web.forms import Problems, major_units, minor_units

PARTICIPANTS: Final = ("adults", "youth")
OUTCOME_COUNTS: Final = (
    "agreements_signed",
    "trade_leads",
    "jobs_created",
    "students_exchanged",
    "follow_up_projects",
)
ACTIVITY: Final = ("title", "held_on", "ends_on", "description")
SPENDING: Final = ("category", "description", "amount")
ATTACHMENT: Final = ("name", "content_type", "size_bytes")
ROWS: Final = ("activities", "spending", "attachments")
# Groups of inputs whose own problems ("list at least one activity held") show at the group.
GROUPS: Final = ("participants", "outcomes", *ROWS)
# Empty rows offered below the filled ones; saving offers more.
SPARE: Final = {"activities": 1, "spending": 1, "attachments": 1}
EDITABLE: Final = ("requested", "draft", "changes_requested")
TIMEOUT: Final = httpx.Timeout(10.0)

LABELS: Final = {
    "participants": "The participants",
    "participants.adults": "The number of adults",
    "participants.youth": "The number of young people",
    "outcomes": "The outcomes",
    "outcomes.agreements_signed": "The agreements signed",
    "outcomes.trade_leads": "The trade leads",
    "outcomes.jobs_created": "The jobs created",
    "outcomes.students_exchanged": "The students exchanged",
    "outcomes.follow_up_projects": "The follow-up projects",
    "outcomes.narrative": "The outcomes' story",
    "activities": "The activities",
    "spending": "The spending",
    "attachments": "The attachments",
    "lessons_learned": "The lessons learned",
}
ROW_WORDS: Final = {
    "activities": "Activity",
    "spending": "Spending line",
    "attachments": "Attachment",
}
PART_WORDS: Final = {
    "held_on": "first day",
    "ends_on": "last day",
    "content_type": "type",
    "size_bytes": "size in bytes",
}


class ActivityShown(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    title: str
    held_on: date
    ends_on: date | None = None
    description: str = ""


class SpendingShown(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    category: str
    description: str = ""
    amount: Money
    converted: Money | None = None


class DraftShown(BaseModel):
    """A report's draft as reporting answers it: any part may still be missing."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    participants: dict[str, int] | None = None
    activities: list[ActivityShown] = Field(default_factory=list)
    outcomes: ReportOutcomes | None = None
    spending: list[SpendingShown] = Field(default_factory=list)
    attachments: list[AttachmentMeta] = Field(default_factory=list)
    lessons_learned: str = ""


class ReviewShown(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    revision: int
    outcome: str
    comments: str
    reviewed_at: datetime


class ReportShown(BaseModel):
    """What the portal reads of reporting's report view (``GET /v1/reports/{id}``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    report_id: str
    application_id: str
    state: str
    due_on: date | None
    overdue: bool
    late: bool | None
    budget_lines: list[BudgetLine]
    awarded: Money | None
    revision: int
    draft: DraftShown | None
    submitted: ReportContent | None
    submitted_at: datetime | None
    actual_spending: Money | None
    reviews: list[ReviewShown]

    @property
    def editable(self) -> bool:
        return self.state in EDITABLE

    @property
    def categories(self) -> list[str]:
        return sorted({line.category for line in self.budget_lines})


class ReportList(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    items: list[ReportShown]


class ActivityBody(BaseModel):
    title: str | None = None
    held_on: str | None = None
    ends_on: str | None = None
    description: str = ""


class SpendingBody(BaseModel):
    category: str | None = None
    description: str = ""
    amount: Money | None = None


class AttachmentBody(BaseModel):
    name: str | None = None
    content_type: str | None = None
    size_bytes: int | None = None


class ReportDraftBody(BaseModel):
    """The body of ``PUT /v1/reports/{id}`` as the form gives it. Deliberately loose (text
    where reporting wants a date, no bounds): reporting checks it and names what is wrong,
    so the portal never holds rules of its own that could drift from the API's."""

    participants: dict[str, int] | None = None
    activities: list[ActivityBody] = Field(default_factory=list)
    outcomes: dict[str, int | str] | None = None
    spending: list[SpendingBody] = Field(default_factory=list)
    attachments: list[AttachmentBody] = Field(default_factory=list)
    lessons_learned: str = ""


# ---------------------------------------------------------------- reporting's answers


class ReportingUnavailableError(Exception):
    """Reporting cannot be reached or failed; nothing was changed there."""


class ReportRefusedError(Exception):
    """Reporting refused the request: ``problems`` by the form's fields (a 422, or a 409
    naming fields), else ``str(error)`` is its reason."""

    def __init__(self, status_code: int, message: str, problems: Problems | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.problems = problems


@dataclass(frozen=True)
class ReportingApi:
    """Reporting's report routes, called as the applicant whose ``token`` this is."""

    base_url: str
    token: str = field(repr=False)

    async def reports(self, application_id: str) -> list[ReportShown]:
        answer = await self._call("GET", "/v1/reports", params={"application_id": application_id})
        return ReportList.model_validate_json(answer.content).items

    async def report(self, report_id: str) -> ReportShown:
        return ReportShown.model_validate_json((await self._call("GET", _path(report_id))).content)

    async def save(self, report_id: str, body: ReportDraftBody) -> ReportShown:
        answer = await self._call("PUT", _path(report_id), json=body.model_dump(mode="json"))
        return ReportShown.model_validate_json(answer.content)

    async def submit(self, report_id: str) -> ReportShown:
        answer = await self._call("POST", f"{_path(report_id)}/submit")
        return ReportShown.model_validate_json(answer.content)

    async def _call(self, method: str, path: str, **options: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=TIMEOUT) as client:
                answer = await client.request(method, path, headers=headers, **options)
        except httpx.HTTPError as error:
            raise ReportingUnavailableError(str(error) or type(error).__name__) from error
        if answer.status_code >= 500:
            raise ReportingUnavailableError(f"it answered {answer.status_code}")
        if answer.status_code >= 400:
            raise _refusal(answer)
        return answer


def _path(report_id: str) -> str:
    return f"/v1/reports/{quote(report_id, safe='')}"


def _refusal(answer: httpx.Response) -> ReportRefusedError:
    try:
        detail = answer.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list) and detail:
        problems = Problems()
        for problem in detail:
            name = str(problem.get("field", ""))
            problems.add(name, str(problem.get("msg", "is not valid")))
        return ReportRefusedError(answer.status_code, "", problems)
    return ReportRefusedError(answer.status_code, str(detail or answer.reason_phrase))


# ---------------------------------------------------------------- the form


@dataclass
class ReportForm:
    """What the report form shows: the values, and how many rows of each list."""

    values: dict[str, str]
    rows: dict[str, int]
    inputs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = {"activities": ACTIVITY, "spending": SPENDING, "attachments": ATTACHMENT}
        self.inputs = [
            *(f"participants.{name}" for name in PARTICIPANTS),
            *(f"outcomes.{name}" for name in (*OUTCOME_COUNTS, "narrative")),
            "lessons_learned",
            *(
                f"{rows}[{i}].{name}"
                for rows, names in parts.items()
                for i in range(self.rows[rows])
                for name in names
            ),
        ]


class ReportFormError(Exception):
    def __init__(self, problems: Problems) -> None:
        super().__init__("; ".join(m for messages in problems.values() for m in messages))
        self.problems = problems


def _count(values: dict[str, str], prefix: str) -> int:
    found = [int(m.group(1)) for k in values if (m := re.match(rf"{prefix}\[(\d+)\]", k))]
    return max(found, default=-1) + 1


def _filled(values: dict[str, str], prefix: str) -> int:
    """Rows up to the last one holding something (a currency alone is no content)."""
    found = [
        int(m.group(1))
        for k, typed in values.items()
        if typed.strip()
        and not k.endswith(".currency")
        and (m := re.match(rf"{prefix}\[(\d+)\]", k))
    ]
    return max(found, default=-1) + 1


def shown(values: dict[str, str]) -> ReportForm:
    """The form for ``values`` (as saved, or as typed), with its spare rows."""
    return ReportForm(values, {name: _filled(values, name) + SPARE[name] for name in ROWS})


def form_of(report: ReportShown) -> ReportForm:
    """A report's draft (or, once submitted, what was submitted) as the form shows it."""
    draft = report.draft or DraftShown()
    if report.submitted is not None and not report.editable:
        draft = DraftShown.model_validate(report.submitted.model_dump())
    values: dict[str, str] = {"lessons_learned": draft.lessons_learned}
    for name in PARTICIPANTS:
        count = (draft.participants or {}).get(name)
        values[f"participants.{name}"] = "" if count is None else str(count)
    if draft.outcomes is not None:
        for name in OUTCOME_COUNTS:
            values[f"outcomes.{name}"] = str(getattr(draft.outcomes, name))
        values["outcomes.narrative"] = draft.outcomes.narrative
    for i, activity in enumerate(draft.activities):
        row = f"activities[{i}]"
        values[f"{row}.title"] = activity.title
        values[f"{row}.held_on"] = activity.held_on.isoformat()
        values[f"{row}.ends_on"] = activity.ends_on.isoformat() if activity.ends_on else ""
        values[f"{row}.description"] = activity.description
    for i, line in enumerate(draft.spending):
        row = f"spending[{i}]"
        values[f"{row}.category"] = line.category
        values[f"{row}.description"] = line.description
        values[f"{row}.amount"] = major_units(line.amount.amount_minor, line.amount.currency)
        values[f"{row}.amount.currency"] = line.amount.currency
    for i, attachment in enumerate(draft.attachments):
        row = f"attachments[{i}]"
        values[f"{row}.name"] = attachment.name
        values[f"{row}.content_type"] = attachment.content_type
        values[f"{row}.size_bytes"] = str(attachment.size_bytes)
    return shown(values)


@dataclass
class ReadReport:
    """A posted form as reporting's body, and which shown row each sent row came from."""

    body: ReportDraftBody
    rows: dict[str, list[int]]

    def problems(self, found: Problems) -> Problems:
        """Reporting's problems, named after the rows shown and worded for people."""
        problems = Problems()
        for name, messages in found.items():
            at = name
            for rows, shown_rows in self.rows.items():
                match = re.match(rf"{rows}\[(\d+)\]", at)
                if match and int(match.group(1)) < len(shown_rows):
                    at = f"{rows}[{shown_rows[int(match.group(1))]}]{at[match.end() :]}"
            for message in messages:
                problems.add(at, human(name, message, at))
        return problems


def report_of(form: dict[str, str]) -> ReadReport:
    """The body a posted report form describes; ``ReportFormError`` names what typed is no
    number. Empty rows are left out, and a group left empty is not sent."""
    problems = Problems()

    def text(name: str) -> str:
        return form.get(name, "").strip()

    def whole(name: str) -> int | None:
        typed = text(name).replace(",", "").replace(" ", "")
        if not typed:
            return None
        if not re.fullmatch(r"-?\d{1,15}", typed):
            problems.add(name, f"{label(name)} should be a whole number such as 4")
            return None
        # A negative count is sent as typed: reporting's own check says what it must be.
        return int(typed)

    participants = {name: whole(f"participants.{name}") for name in PARTICIPANTS}
    outcomes: dict[str, int | str] = {}
    for name in OUTCOME_COUNTS:
        count = whole(f"outcomes.{name}")
        if count is not None:
            outcomes[name] = count
    if text("outcomes.narrative"):
        outcomes["narrative"] = text("outcomes.narrative")

    sent: dict[str, list[int]] = {name: [] for name in ROWS}

    def typed_rows(prefix: str, inputs: tuple[str, ...]) -> Iterator[str]:
        """The rows of ``prefix`` with any of ``inputs`` typed, each noted as sent."""
        for i in range(_count(form, prefix)):
            row = f"{prefix}[{i}]"
            if any(text(f"{row}.{name}") for name in inputs):
                sent[prefix].append(i)
                yield row

    activities = [
        ActivityBody(
            title=text(f"{row}.title") or None,
            held_on=text(f"{row}.held_on") or None,
            ends_on=text(f"{row}.ends_on") or None,
            description=text(f"{row}.description"),
        )
        for row in typed_rows("activities", ACTIVITY)
    ]
    spending = []
    for row in typed_rows("spending", ("description", "amount")):
        amount = None
        if text(f"{row}.amount"):
            currency = text(f"{row}.amount.currency") or "USD"
            try:
                minor = minor_units(text(f"{row}.amount"), currency)
                amount = Money(amount_minor=minor, currency=currency)
            except (ValueError, ValidationError) as error:
                reason = error if isinstance(error, ValueError) else "is not an amount"
                problems.add(f"{row}.amount", f"{label(f'{row}.amount')} {reason}")
        spending.append(
            SpendingBody(
                category=text(f"{row}.category") or None,
                description=text(f"{row}.description"),
                amount=amount,
            )
        )
    attachments = [
        AttachmentBody(
            name=text(f"{row}.name") or None,
            content_type=text(f"{row}.content_type") or None,
            size_bytes=whole(f"{row}.size_bytes"),
        )
        for row in typed_rows("attachments", ATTACHMENT)
    ]
    if problems:
        raise ReportFormError(problems)
    body = ReportDraftBody(
        participants=(
            None
            if all(count is None for count in participants.values())
            else {name: count for name, count in participants.items() if count is not None}
        ),
        activities=activities,
        outcomes=outcomes or None,
        spending=spending,
        attachments=attachments,
        lessons_learned=text("lessons_learned"),
    )
    return ReadReport(body, sent)


def label(name: str) -> str:
    """How a sentence names a field: ``activities[0].held_on`` -> "Activity 1's first day"."""
    if name in LABELS:
        return LABELS[name]
    match = re.match(r"(\w+)\[(\d+)\]\.?(\w*)", name)
    if match and match.group(1) in ROW_WORDS:
        part = match.group(3)
        words = f"{ROW_WORDS[match.group(1)]} {int(match.group(2)) + 1}"
        return words + (f"'s {PART_WORDS.get(part, part.replace('_', ' '))}" if part else "")
    return "The " + name.replace("_", " ").replace(".", " ")


def human(name: str, message: str, shown: str = "") -> str:
    """Reporting's sentence about ``name`` in words a person uses; ``shown``: the input it
    is shown at, when that is another row than the API's."""
    words = label(re.sub(r"\.amount\.\w+$", ".amount", shown or name))
    if message.startswith(name):
        message = message[len(name) :].lstrip(": ")
        if message.startswith("Input should"):
            return f"{words} should{message[len('Input should') :]}"
        if message.startswith("String should have at least 1 character"):
            return f"{words} is required"
        if message.startswith(("Input", "String", "Value", "List")):
            return f"{words}: {message[0].lower()}{message[1:]}"
        return f"{words} {message}"
    if message.startswith(("is ", "must ", "should ", "has ")):
        return f"{words} {message}"
    return message
