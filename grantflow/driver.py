"""The people who use grantflow, played through its public interfaces.

Applicants draft and submit through intake's API, partner cities confirm through the link
mailed to each of them, reviewers score their tasks through review's API, applicants report
through reporting's API; finance is the simulator that ``grantflow up`` runs. Nothing here
reads a database or a topic: what the driver sees is what users see.

Every step tolerates a stack that is restarting under it (a refused connection, a 503, a
process killed mid-request): it tries again until its deadline, and repeats only what is
safe to repeat (a submission carries an Idempotency-Key; a review or a partner answer that
already went through is recognised).

The fault suite (``tests/faults``) drives applications with it while it breaks the stack.
"""

from __future__ import annotations

import asyncio
import copy
import email
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from services.intake.domain import DRAFT_EXAMPLE
from shared.auth import Role, mint_token
from shared.settings import CommonSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

SERVICES = ("intake", "review", "disbursement", "reporting", "workflows")
TOKEN_TTL = timedelta(hours=6)
POLL = 0.25
LINK = re.compile(r"(https?://\S+/v1/partner-confirmations/[A-Za-z0-9._~-]+)")

# Intake's own example draft, with its budget in dollars only, so that the amounts do not
# depend on exchange rates: 11,000 USD requested, 4,080 USD matching (27% of the budget).
BASE_DRAFT: dict[str, Any] = {
    **copy.deepcopy(DRAFT_EXAMPLE),
    "budget_lines": [
        {
            "category": "travel",
            "description": "Flights",
            "amount": {"amount_minor": 1_508_000, "currency": "USD"},
        }
    ],
}

# A Young Ambassadors Tri-lateral exchange: a US member's youth delegation with partners in
# Mexico and Canada, each confirming through its own link; the same money as above (within
# the program's 15,000 USD and 20% matching).
TRILATERAL_DRAFT: dict[str, Any] = {
    **copy.deepcopy(BASE_DRAFT),
    "program_code": "YAP-TNA",
    "focus_area": "youth_and_education",
    "summary": "Youth orchestras of three sister cities rehearse and perform together.",
    "partner": {
        "name": "Puebla",
        "country": "MX",
        "contact_name": "Lucia Hernandez",
        "contact_email": "hermanamiento@puebla.example.org",
    },
    "other_partners": [
        {
            "name": "Guelph",
            "country": "CA",
            "contact_name": "Owen Tremblay",
            "contact_email": "twinning@guelph.example.org",
        }
    ],
    "delegation": {"adults": 2, "youth": 8},
    "objectives": "Three joint concerts and a standing youth-orchestra exchange.",
}
DRAFTS = {"AUPAP": BASE_DRAFT, "YAP-TNA": TRILATERAL_DRAFT}
# As the catalogs say (``reviewers_needed``).
REVIEWERS = {"AUPAP": 3, "YAP-TNA": 2}


class StepTimeoutError(Exception):
    """A step did not happen in time; ``str(error)`` says which and what was last seen."""


@dataclass(frozen=True)
class Endpoints:
    """Where the stack answers and where its mail lands."""

    urls: dict[str, str]
    mail_dir: Path

    @classmethod
    def local(cls, state_dir: Path, http_port_base: int | None = None) -> Endpoints:
        ports = {
            name: (18000 if http_port_base is None else http_port_base) + index
            for index, name in enumerate(SERVICES, start=1)
        }
        return cls(
            urls={name: f"http://127.0.0.1:{port}" for name, port in ports.items()},
            mail_dir=state_dir / "mail",
        )

    def url(self, service: str, path: str) -> str:
        return self.urls[service] + path


@dataclass(frozen=True)
class Journey:
    """One application's plan: who applies, to what, and what the exchange really cost."""

    member_id: str
    city: str
    title: str
    spent_minor: int = 1_000_000
    program: str = "AUPAP"

    def draft(self) -> dict[str, Any]:
        draft = copy.deepcopy(DRAFTS[self.program])
        draft["title"] = self.title
        draft["contacts"] = [
            {"name": f"{self.city} office", "email": f"{self.member_id}@example.org"}
        ]
        return draft

    def partner_emails(self) -> list[str]:
        draft = DRAFTS[self.program]
        return [p["contact_email"] for p in [draft["partner"], *draft.get("other_partners", [])]]

    @property
    def reviewers(self) -> int:
        return REVIEWERS[self.program]


@dataclass
class Outcome:
    journey: Journey
    application_id: str | None = None
    stage: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


class People:
    """Plays applicants, partners and reviewers against one stack."""

    def __init__(
        self,
        endpoints: Endpoints,
        settings: CommonSettings | None = None,
        *,
        step_timeout: float = 120.0,
    ) -> None:
        self.endpoints = endpoints
        self.settings = settings or CommonSettings()
        self.step_timeout = step_timeout
        self.http = httpx.AsyncClient(timeout=15.0, trust_env=False)
        self._tokens: dict[tuple[str, str], dict[str, str]] = {}
        self._links_seen: dict[str, str] = {}

    async def close(self) -> None:
        await self.http.aclose()

    # -- who is asking ---------------------------------------------------------------------

    def _auth(self, role: Role, **binding: str) -> dict[str, str]:
        key = (role.value, ",".join(f"{k}={v}" for k, v in sorted(binding.items())))
        if key not in self._tokens:
            token = mint_token(self.settings, role=role, ttl=TOKEN_TTL, **binding)
            self._tokens[key] = {"Authorization": f"Bearer {token}"}
        return self._tokens[key]

    def officer(self) -> dict[str, str]:
        return self._auth(Role.PROGRAM_OFFICER)

    def applicant(self, member_id: str) -> dict[str, str]:
        return self._auth(Role.APPLICANT, member_id=member_id)

    def reviewer(self, reviewer_id: str) -> dict[str, str]:
        return self._auth(Role.REVIEWER, reviewer_id=reviewer_id)

    # -- patience --------------------------------------------------------------------------

    async def until(
        self,
        what: str,
        attempt: Callable[[], Awaitable[T | None]],
        patience: float | None = None,
        *,
        seen: Callable[[], str | None] = lambda: None,
    ) -> T:
        """Try ``attempt`` until it returns a value; a stack mid-restart is tried again.

        ``seen`` says what the last attempt found instead, for the timeout's message."""
        deadline = time.monotonic() + (patience or self.step_timeout)
        error_seen: str | None = None
        while True:
            try:
                found = await attempt()
            except (httpx.HTTPError, OSError) as error:
                found = None
                error_seen = f"{type(error).__name__}: {error}"
            if found is not None:
                return found
            if time.monotonic() > deadline:
                last = error_seen or seen() or "nothing yet"
                raise StepTimeoutError(f"timed out waiting for {what} (last: {last})")
            await asyncio.sleep(POLL)

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        """One request; None when the stack is not answering properly right now."""
        try:
            response = await self.http.request(method, url, **kwargs)
        except (httpx.HTTPError, OSError):
            return None
        return None if response.status_code >= 500 else response

    # -- members ---------------------------------------------------------------------------

    async def ensure_member(self, member_id: str, city: str, country: str = "US") -> None:
        body = {
            "member_id": member_id,
            "name": city,
            "country": country,
            "contacts": [{"name": f"{city} office", "email": f"{member_id}@example.org"}],
            "sister_cities": [{"name": "Nairobi", "country": "KE"}],
        }

        async def create() -> bool | None:
            answer = await self._send(
                "POST",
                self.endpoints.url("intake", "/v1/members"),
                json=body,
                headers=self.officer(),
            )
            if answer is None:
                return None
            if answer.status_code not in (201, 409):
                raise StepTimeoutError(f"member {member_id} refused: {answer.text}")
            return True

        await self.until(f"member {member_id}", create)

    # -- the applicant ---------------------------------------------------------------------

    async def submit(self, journey: Journey) -> str:
        headers = self.applicant(journey.member_id)

        async def draft() -> str | None:
            answer = await self._send(
                "POST",
                self.endpoints.url("intake", "/v1/applications"),
                json=journey.draft(),
                headers={**headers, "Idempotency-Key": f"draft-{journey.title}"},
            )
            if answer is None:
                return None
            if answer.status_code != 201:
                raise StepTimeoutError(f"draft refused: {answer.status_code} {answer.text}")
            return str(answer.json()["application_id"])

        application_id = await self.until(f"a draft for {journey.title}", draft)

        async def submit() -> bool | None:
            answer = await self._send(
                "POST",
                self.endpoints.url("intake", f"/v1/applications/{application_id}/submit"),
                headers={**headers, "Idempotency-Key": f"submit-{application_id}"},
            )
            if answer is None:
                return None
            if answer.status_code != 202:
                raise StepTimeoutError(f"submission refused: {answer.status_code} {answer.text}")
            return True

        await self.until(f"the submission of {application_id}", submit)
        return application_id

    async def report(self, member_id: str, application_id: str, spent_minor: int) -> None:
        headers = self.applicant(member_id)

        async def obligation() -> str | None:
            answer = await self._send(
                "GET", self.endpoints.url("reporting", "/v1/reports"), headers=headers
            )
            if answer is None or answer.status_code != 200:
                return None
            for item in answer.json()["items"]:
                if item["application_id"] == application_id:
                    return str(item["report_id"])
            return None

        report_id = await self.until(f"the report obligation of {application_id}", obligation)
        today = datetime.now(UTC).date()
        body = {
            "participants": {"adults": 4, "youth": 0},
            "activities": [
                {"title": "Site visits", "held_on": (today - timedelta(days=1)).isoformat()}
            ],
            "outcomes": {"agreements_signed": 1, "trade_leads": 2, "narrative": "One MOU."},
            "spending": [
                {"category": "travel", "amount": {"amount_minor": spent_minor, "currency": "USD"}}
            ],
            "attachments": [],
            "lessons_learned": "Apply for visas early.",
        }
        url = self.endpoints.url("reporting", f"/v1/reports/{report_id}")

        async def save_and_submit() -> bool | None:
            current = await self._send("GET", url, headers=headers)
            if current is None or current.status_code != 200:
                return None
            if current.json().get("state") not in ("requested", "draft", "changes_requested"):
                return True  # submitted already (a retry after a lost answer)
            saved = await self._send("PUT", url, json=body, headers=headers)
            if saved is None or saved.status_code != 200:
                return None
            sent = await self._send("POST", url + "/submit", headers=headers)
            if sent is not None and sent.status_code in (409, 422):
                raise StepTimeoutError(f"the report was refused: {sent.text}")
            return True if sent is not None and sent.status_code == 200 else None

        await self.until(f"the report of {application_id}", save_and_submit)

    async def withdraw(self, member_id: str, application_id: str, reason: str) -> None:
        async def withdraw() -> bool | None:
            answer = await self._send(
                "POST",
                self.endpoints.url("intake", f"/v1/applications/{application_id}/withdraw"),
                json={"reason": reason},
                headers=self.applicant(member_id),
            )
            if answer is None:
                return None
            # 409: withdrawn already (a retry after a lost answer).
            if answer.status_code not in (200, 202, 409):
                raise StepTimeoutError(f"withdrawal refused: {answer.status_code} {answer.text}")
            return True

        await self.until(f"the withdrawal of {application_id}", withdraw)

    # -- the partner city ------------------------------------------------------------------

    def _find_link(self, application_id: str, to: str | None = None) -> str | None:
        directory = self.endpoints.mail_dir
        if not directory.exists():
            return None
        for path in sorted(directory.glob("*.eml")):
            if path.name in self._links_seen:
                continue
            message = email.message_from_bytes(path.read_bytes())
            if message.get("X-Grantflow-Application") != application_id:
                continue
            if to is not None and to.lower() not in str(message.get("To", "")).lower():
                continue
            body = message.get_payload(decode=True)
            if isinstance(body, bytes):
                found = LINK.search(body.decode(errors="replace"))
                if found:
                    self._links_seen[path.name] = application_id
                    return found.group(1)
        return None

    async def confirm_partner(self, application_id: str, to: str | None = None) -> None:
        """Confirm through the link mailed to ``to`` (a partner's contact), or the first
        link mailed about the application."""
        who = f"the partner link of {application_id}" + (f" for {to}" if to else "")

        async def find() -> str | None:
            return self._find_link(application_id, to)

        link = await self.until(who, find)

        async def confirm() -> bool | None:
            answer = await self._send("POST", link, json={"answer": "confirm"})
            if answer is None:
                return None
            # 409: the link was used; our own earlier answer went through.
            return True if answer.status_code in (200, 409) else None

        await self.until(f"the partner's answer for {application_id}", confirm)

    async def confirm_partners(self, journey: Journey, application_id: str) -> None:
        """Every partner city confirms through its own link, as each receives it."""
        await asyncio.gather(
            *(self.confirm_partner(application_id, to) for to in journey.partner_emails())
        )

    # -- reviewers -------------------------------------------------------------------------

    async def review(
        self, application_id: str, kind: str, count: int, *, approve: bool = True
    ) -> None:
        """Score ``count`` open tasks of ``kind`` for the application, as their reviewers:
        well and recommending it, or (``approve=False``) at the bottom of the rubric."""
        done: set[str] = set()

        async def open_tasks() -> list[dict[str, Any]] | None:
            answer = await self._send(
                "GET",
                self.endpoints.url("review", "/v1/officer/tasks"),
                params={"application_id": application_id, "kind": kind, "status": "all"},
                headers=self.officer(),
            )
            if answer is None or answer.status_code != 200:
                return None
            tasks = answer.json()
            submitted = [t for t in tasks if t["status"] != "open"]
            if len(submitted) + len(done) >= count and not [
                t for t in tasks if t["status"] == "open" and t["id"] not in done
            ]:
                return []
            waiting = [t for t in tasks if t["status"] == "open" and t["id"] not in done]
            return waiting or None

        deadline = time.monotonic() + self.step_timeout
        while len(done) < count and time.monotonic() < deadline:
            tasks = await self.until(f"{kind} tasks of {application_id}", open_tasks)
            if not tasks:
                return
            for task in tasks:
                if await self._score(task, approve=approve):
                    done.add(task["id"])
        if len(done) < count:
            raise StepTimeoutError(
                f"only {len(done)} of {count} {kind} reviews of {application_id}"
            )

    async def _score(self, task: dict[str, Any], *, approve: bool = True) -> bool:
        headers = self.reviewer(task["reviewer_id"])
        url = self.endpoints.url("review", f"/v1/tasks/{task['id']}")
        detail = await self._send("GET", url, headers=headers)
        if detail is None or detail.status_code != 200:
            return False
        criteria = detail.json()["rubric"]["criteria"]
        answer = await self._send(
            "POST",
            url + "/review",
            headers=headers,
            json={
                "scores": {
                    c["name"]: c["max_score"] - 1 if approve else c["min_score"] for c in criteria
                },
                "recommendation": "approve" if approve else "decline",
                "attest_no_conflict": True,
                "comments": "A sound plan with a committed partner."
                if approve
                else "The plan does not show what the exchange would achieve.",
            },
        )
        # 409: reviewed already (a retry after a lost answer) or moved to someone else.
        return answer is not None and answer.status_code in (201, 409)

    # -- watching --------------------------------------------------------------------------

    async def stage(self, application_id: str) -> str | None:
        answer = await self._send(
            "GET",
            self.endpoints.url("workflows", f"/v1/lifecycle/{application_id}"),
            headers=self.officer(),
        )
        if answer is None or answer.status_code != 200:
            return None
        return str(answer.json()["stage"])

    async def reach(self, application_id: str, *stages: str, patience: float | None = None) -> str:
        last_stage: list[str | None] = [None]

        async def reached() -> str | None:
            stage = last_stage[0] = await self.stage(application_id)
            return stage if stage in stages else None

        return await self.until(
            f"{application_id} in {'/'.join(stages)}",
            reached,
            patience,
            seen=lambda: None if last_stage[0] is None else f"in {last_stage[0]}",
        )

    # -- a whole life ----------------------------------------------------------------------

    async def live(self, journey: Journey, outcome: Outcome | None = None) -> Outcome:
        """Take one application from draft to close-out, as its people would, filling in
        ``outcome`` (given: the caller watches it as it goes)."""
        outcome = outcome or Outcome(journey)
        try:
            application_id = await self.submit(journey)
            outcome.application_id = application_id
            await self.confirm_partners(journey, application_id)
            await self.review(application_id, "application", journey.reviewers)
            await self.reach(application_id, "report_due", "report_overdue")
            await self.report(journey.member_id, application_id, journey.spent_minor)
            await self.review(application_id, "report", 1)
            outcome.stage = await self.reach(application_id, "closed")
        except StepTimeoutError as error:
            outcome.error = str(error)
            if outcome.application_id is not None:
                outcome.stage = await self.stage(outcome.application_id)
        outcome.finished = time.monotonic()
        return outcome
