"""One application's whole cycle through the real stack: every service, Kafka and Temporal.

``grantflow up`` runs the four services, the workflow worker and the finance simulator on
Tansu and the Temporal dev server, under a demo catalog whose periods are seconds. The test
plays the people: the applicant, two partner cities (a Young Ambassadors Tri-lateral
exchange, with a partner in Mexico and one in Canada), two reviewers and a program officer;
the exchange spends less than the advance, and the difference is asked back and received.
"""

from __future__ import annotations

import copy
import email
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from grantflow.driver import TRILATERAL_DRAFT
from tests.e2e.test_up import READY_TIMEOUT, STOP_TIMEOUT, Output, Ports, clean_env

pytestmark = pytest.mark.timeout(300)

DEMO_CATALOG = Path(__file__).resolve().parents[2] / "services/intake/catalog/programs-demo.json"


def fast_catalog(tmp_path: Path) -> Path:
    catalog = json.loads(DEMO_CATALOG.read_text())
    catalog["defaults"]["demo_exchange_ends_after"] = "PT3S"
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


class Stack:
    def __init__(self, tmp_path: Path, output: str, ports: Ports) -> None:
        self.tmp_path = tmp_path
        self.ports = ports
        self.http = httpx.Client(timeout=30)
        self.tokens = {
            role: re.search(rf"^\s+{re.escape(label)}\s+(eyJ\S+)", output, re.M).group(1)  # type: ignore[union-attr]
            for role, label in (
                ("applicant", "applicant (demo-member-1)"),
                ("officer", "program_officer"),
            )
        }

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports.http(service)}{path}"

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def reviewer(self, reviewer_id: str) -> dict[str, str]:
        token = subprocess.run(
            [sys.executable, "-m", "grantflow", "token", "--role", "reviewer",
             "--reviewer", reviewer_id],
            capture_output=True, text=True, check=True, env=clean_env(),
        ).stdout.strip()  # fmt: skip
        return {"Authorization": f"Bearer {token}"}

    def stage(self, application_id: str) -> str:
        answer = self.http.get(
            self.url("workflows", f"/v1/lifecycle/{application_id}"), headers=self.auth("officer")
        )
        return str(answer.json()["stage"]) if answer.status_code == 200 else ""

    def open_tasks(self, application_id: str, kind: str) -> list[dict[str, Any]]:
        tasks = self.http.get(
            self.url("review", "/v1/officer/tasks"), headers=self.auth("officer")
        ).json()
        return [
            task for task in tasks
            if task["application_id"] == application_id and task["status"] == "open"
            and task["kind"] == kind
        ]  # fmt: skip

    def review_all(self, application_id: str, kind: str, count: int) -> list[dict[str, Any]]:
        """Score every open task; what each reviewer saw of the application."""
        tasks = wait_for(
            f"{count} open {kind} review tasks",
            lambda: (
                (found := self.open_tasks(application_id, kind)) and len(found) >= count and found
            ),
        )
        seen: list[dict[str, Any]] = []
        for task in tasks:
            headers = self.reviewer(task["reviewer_id"])
            detail = self.http.get(self.url("review", f"/v1/tasks/{task['id']}"), headers=headers)
            seen.append(detail.json()["application"])
            criteria = detail.json()["rubric"]["criteria"]
            answer = self.http.post(
                self.url("review", f"/v1/tasks/{task['id']}/review"),
                headers=headers,
                json={
                    "scores": {c["name"]: c["max_score"] - 1 for c in criteria},
                    "recommendation": "approve",
                    "attest_no_conflict": True,
                    "comments": "A sound plan with a committed partner.",
                },
            )
            assert answer.status_code == 201, answer.text
        return seen

    def partner_link(self, to: str) -> str:
        def find() -> str | None:
            for path in sorted((self.tmp_path / ".grantflow" / "mail").glob("*.eml")):
                message = email.message_from_bytes(path.read_bytes())
                if to not in str(message["To"]):
                    continue
                body = message.get_payload(decode=True)
                assert isinstance(body, bytes)
                found = re.search(r"(http://\S+/v1/partner-confirmations/\S+)", body.decode())
                if found:
                    return found.group(1)
            return None

        return str(wait_for(f"the confirmation link mailed to {to}", find))


def test_an_application_goes_from_submission_to_close_out_across_every_service(
    tmp_path: Path,
) -> None:
    ports = Ports()
    up = subprocess.Popen(
        [sys.executable, "-m", "grantflow", "up", *ports.args()],
        cwd=tmp_path,
        env={**clean_env(), "GRANTFLOW_INTAKE_CATALOG": str(fast_catalog(tmp_path))},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    assert up.stdout is not None
    output = Output(up.stdout, marker="ready in")
    try:
        assert output.seen.wait(READY_TIMEOUT), output.text()[-3000:]
        stack = Stack(tmp_path, output.text(), ports)
        applicant = stack.auth("applicant")

        # The applicant drafts, previews the checks and submits.
        draft = stack.http.post(
            stack.url("intake", "/v1/applications"), json=copy.deepcopy(TRILATERAL_DRAFT),
            headers=applicant,
        )  # fmt: skip
        assert draft.status_code == 201, draft.text
        application_id = draft.json()["application_id"]
        checks = stack.http.get(
            stack.url("intake", f"/v1/applications/{application_id}/checks"), headers=applicant
        )
        assert checks.json()["ready"] is True, checks.text
        submitted = stack.http.post(
            stack.url("intake", f"/v1/applications/{application_id}/submit"),
            headers={**applicant, "Idempotency-Key": "e2e-submit"},
        )
        assert submitted.status_code == 202, submitted.text

        # Each partner city confirms through the link it alone was emailed; the lifecycle
        # waits for both.
        puebla = stack.partner_link("hermanamiento@puebla.example.org")
        guelph = stack.partner_link("twinning@guelph.example.org")
        assert puebla != guelph
        confirmed = stack.http.post(puebla, json={"answer": "confirm"})
        assert confirmed.json()["confirmed"] is True, confirmed.text
        time.sleep(1)
        assert stack.stage(application_id) == "partner_confirmation"
        confirmed = stack.http.post(guelph, json={"answer": "confirm"})
        assert confirmed.json()["confirmed"] is True, confirmed.text
        assert stack.http.post(guelph, json={"answer": "confirm"}).status_code >= 400  # used

        # Two reviewers score it, seeing both partners; it is awarded, reserved and the
        # advance is paid.
        seen = stack.review_all(application_id, "application", 2)
        # A blind review: the partners' countries and the plan, not who they are.
        for application in seen:
            partners = application["details"]["partners"]
            assert [p["country"] for p in partners] == ["MX", "CA"], application
            assert {p["name"] for p in partners} == {"[withheld]"}
        wait_for("the post-exchange report request",
                 lambda: stack.stage(application_id) == "report_due")  # fmt: skip

        # The applicant reports, spending less than the advance; a reviewer approves.
        def obligation() -> dict[str, Any] | None:
            reports = stack.http.get(stack.url("reporting", "/v1/reports"), headers=applicant)
            mine = [r for r in reports.json()["items"] if r["application_id"] == application_id]
            return mine[0] if mine else None

        report = wait_for("the report obligation", obligation, timeout=15)
        saved = stack.http.put(
            stack.url("reporting", f"/v1/reports/{report['report_id']}"),
            headers=applicant,
            json={
                "participants": {"adults": 2, "youth": 8},
                "activities": [{"title": "Kiosk opening", "held_on": "2026-11-27"}],
                "outcomes": {"agreements_signed": 1, "trade_leads": 2, "narrative": "One MOU."},
                "spending": [{"category": "travel",
                              "amount": {"amount_minor": 500_000, "currency": "USD"}}],
                "attachments": [],
                "lessons_learned": "Apply for visas early.",
            },
        )  # fmt: skip
        assert saved.status_code == 200, saved.text
        sent = stack.http.post(
            stack.url("reporting", f"/v1/reports/{report['report_id']}/submit"), headers=applicant
        )
        assert sent.status_code == 200, sent.text
        stack.review_all(application_id, "report", 1)
        wait_for("close-out", lambda: stack.stage(application_id) == "closed")

        # What the applicant sees: closed, with the money as it ended.
        def intake_status() -> dict[str, Any] | None:
            answer = stack.http.get(
                stack.url("intake", f"/v1/applications/{application_id}"), headers=applicant
            ).json()
            return answer if answer["status"] == "closed" else None

        status = wait_for("the applicant to see it closed", intake_status, timeout=15)
        stages = [entry["stage"] for entry in status["history"]]
        for stage in (
            "partner_confirmation",
            "review",
            "awarded",
            "advance_payment",
            "awaiting_exchange",
            "report_due",
            "report_review",
            "closed",
        ):
            assert stage in stages, stages

        # Awarded 11,000 USD; the 70% advance (7,700) was paid; 5,000 spent: 2,700 comes back,
        # asked of finance (the simulator) and received.
        def refunded() -> dict[str, Any] | None:
            payments: dict[str, Any] = stack.http.get(
                stack.url("disbursement", f"/v1/applications/{application_id}/payments"),
                headers=stack.auth("officer"),
            ).json()
            received = [r for r in payments["refunds"] if r["status"] == "received"]
            return payments if received else None

        payments = wait_for("the refund to be received", refunded, timeout=30)
        assert payments["awarded"] == {"amount_minor": 1_100_000, "currency": "USD"}
        assert [(p["tranche"], p["status"], p["amount"]["amount_minor"])
                for p in payments["payments"]] == [(1, "settled", 770_000)]  # fmt: skip
        [refund] = payments["refunds"]
        assert refund["amount"] == {"amount_minor": 270_000, "currency": "USD"}
        assert refund["received"] == {"amount_minor": 270_000, "currency": "USD"}
        assert payments["refund_due"] == {"amount_minor": 0, "currency": "USD"}
        assert payments["disbursed"] == {"amount_minor": 500_000, "currency": "USD"}
        assert payments["reserved"]["amount_minor"] == 0
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            up.wait(timeout=STOP_TIMEOUT + 5)
        output.join(timeout=2)
