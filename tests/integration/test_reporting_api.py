"""The reporting HTTP API on SQLite and PostgreSQL: reports, standing, analytics, dashboard.

Events are fed to the service's consumer through FastStream's in-memory test broker (the
Kafka path has its own tests in test_reporting_flow.py); what the service publishes is
read from its outbox.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.reporting.analytics.tables import Dimension, TableName, build_table
from services.reporting.app import create_app
from services.reporting.demo import DEMO_REPORT, seed_demo
from services.reporting.persistence import messaging
from services.reporting.settings import ReportingSettings
from shared.auth import Role
from shared.contracts import topics
from shared.db import create_engine
from shared.migrations import upgrade
from tests.support.reporting import (
    EXPECTED,
    Event,
    Feed,
    Served,
    at,
    budget_line,
    consumer_of,
    history,
    report_overdue,
    report_requested,
    report_reviewed,
    status,
    submitted,
)

NOW = datetime(2027, 7, 20, 9, 0, tzinfo=UTC)


@dataclass
class Reporting(Served):
    consume: Feed

    def member(self, name: str = "m-1") -> dict[str, str]:
        return self.headers(Role.APPLICANT, f"{self.unique}-{name}")

    @property
    def officer(self) -> dict[str, str]:
        return self.headers(Role.PROGRAM_OFFICER)

    async def feed(self, *events: Event) -> None:
        await self.consume(*events)

    async def published(self, topic: topics.Topic) -> list[dict[str, Any]]:
        table = messaging.outbox
        async with self.app.state.runtime.sessions() as session:
            rows = (
                await session.execute(
                    select(table.c.body)
                    .where(table.c.topic == topic.qualified(self.settings.topic_prefix))
                    .order_by(table.c.id)
                )
            ).all()
        mine = [json.loads(row.body) for row in rows]
        return [body for body in mine if body["application_id"].startswith(self.unique)]

    def requested(self, report: str = "R1", member: str = "m-1", **options: Any) -> Event:
        options.setdefault(
            "budget",
            [
                budget_line("KES", 100_000_000, 770_000, "travel"),
                budget_line("KES", 30_000_000, 230_000, "venue"),
            ],
        )
        options.setdefault("awarded", 1_000_000)
        return report_requested(
            f"{self.unique}-A1",
            f"{self.unique}-{report}",
            when=at("2027-07-01"),
            member_id=f"{self.unique}-{member}",
            **options,
        )


@asynccontextmanager
async def serving(database_url: str, unique: str) -> AsyncIterator[Reporting]:
    await asyncio.to_thread(upgrade, "reporting", database_url)
    settings = ReportingSettings(database_url=database_url, topic_prefix=f"{unique}.")
    app = create_app(settings, clock=lambda: NOW)
    # No lifespan: these tests need neither the broker nor the relay.
    transport = httpx.ASGITransport(app=app)
    async with (
        consumer_of(app) as consume,
        httpx.AsyncClient(transport=transport, base_url="http://reporting") as client,
    ):
        yield Reporting(app, client, settings, unique, consume)
    await app.state.runtime.engine.dispose()


@pytest.fixture
async def reporting(database_url: str, unique: str) -> AsyncIterator[Reporting]:
    async with serving(database_url, unique) as served:
        yield served


@pytest.fixture
async def reporting_alone(isolated_database_url: str, unique: str) -> AsyncIterator[Reporting]:
    """On a database of its own: a program's figures are this test's history alone."""
    async with serving(isolated_database_url, unique) as served:
        yield served


REPORT: dict[str, Any] = {
    "participants": {"adults": 4, "youth": 6},
    "activities": [{"title": "Clinic visit", "held_on": "2027-07-01"}],
    "outcomes": {"agreements_signed": 2, "trade_leads": 3, "narrative": "Two MOUs."},
    "spending": [
        {"category": "travel", "amount": {"amount_minor": 65_000_000, "currency": "KES"}},
        {"category": "venue", "amount": {"amount_minor": 13_000_000, "currency": "KES"}},
    ],
    "attachments": [{"name": "photos.zip", "content_type": "application/zip", "size_bytes": 1024}],
    "lessons_learned": "Plan the visas early.",
}


async def test_every_report_route_checks_its_id_and_who_asks(reporting: Reporting) -> None:
    await reporting.feed(reporting.requested())
    report = f"{reporting.unique}-R1"
    client = reporting.client
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/v1/reports/{report}", None),
        ("PUT", f"/v1/reports/{report}", {}),
        ("POST", f"/v1/reports/{report}/submit", None),
    ]
    for method, path, body in routes:
        bad_id = path.replace(report, "bad%20id%3B")
        assert (await client.request(method, path, json=body)).status_code == 401, path
        answer = await client.request(method, bad_id, json=body, headers=reporting.member())
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["path", "report_id"]
        other = await client.request(method, path, json=body, headers=reporting.member("m-9"))
        assert other.status_code == 404, path  # another member's report does not exist
        missing = path.replace(report, f"{reporting.unique}-nope")
        answer = await client.request(method, missing, json=body, headers=reporting.member())
        assert answer.status_code == 404, path
        reviewer = await client.request(
            method, path, json=body, headers=reporting.headers(Role.REVIEWER)
        )
        assert reviewer.status_code == 403, path
    # Officers read any report but do not write a member's report.
    assert (await client.get(routes[0][1], headers=reporting.officer)).status_code == 200
    assert (await client.put(routes[1][1], json={}, headers=reporting.officer)).status_code == 403
    mine = await client.get("/v1/reports", headers=reporting.member())
    assert [item["report_id"] for item in mine.json()["items"]] == [report]
    assert (await client.get("/v1/reports", headers=reporting.member("m-9"))).json()["total"] == 0


async def test_a_report_is_drafted_submitted_and_published_in_the_award_currency(
    reporting: Reporting,
) -> None:
    await reporting.feed(reporting.requested())
    client, report = reporting.client, f"{reporting.unique}-R1"
    listed = (await client.get("/v1/reports", headers=reporting.member())).json()["items"][0]
    assert listed["state"] == "requested"
    assert listed["due_on"] == "2027-07-30"
    assert listed["awarded"] == {"amount_minor": 1_000_000, "currency": "USD"}

    draft = {"participants": REPORT["participants"], "spending": REPORT["spending"][:1]}
    saved = await client.put(f"/v1/reports/{report}", json=draft, headers=reporting.member())
    assert saved.status_code == 200, saved.text
    assert saved.json()["state"] == "draft"
    assert saved.json()["draft"]["spending"][0]["converted"] == {
        "amount_minor": 500_000,
        "currency": "USD",
    }
    incomplete = await client.post(f"/v1/reports/{report}/submit", headers=reporting.member())
    assert incomplete.status_code == 409, incomplete.text
    assert {tuple(error["loc"]) for error in incomplete.json()["detail"]} == {
        ("body", "activities"),
        ("body", "outcomes"),
        ("body", "lessons_learned"),
    }
    assert await reporting.published(topics.REPORT_SUBMITTED) == []

    await client.put(f"/v1/reports/{report}", json=REPORT, headers=reporting.member())
    submitted = await client.post(f"/v1/reports/{report}/submit", headers=reporting.member())
    assert submitted.status_code == 200, submitted.text
    view = submitted.json()
    assert view["state"] == "submitted"
    assert view["late"] is False
    assert view["actual_spending"] == {"amount_minor": 600_000, "currency": "USD"}
    assert [line["amount"]["currency"] for line in view["submitted"]["spending"]] == ["KES", "KES"]

    [event] = await reporting.published(topics.REPORT_SUBMITTED)
    payload = event["payload"]
    assert payload["actual_spending"] == {"amount_minor": 600_000, "currency": "USD"}
    assert payload["revision"] == 1
    assert payload["content"]["outcomes"]["agreements_signed"] == 2
    assert [line["converted"]["amount_minor"] for line in payload["content"]["spending"]] == [
        500_000,
        100_000,
    ]
    again = await client.post(f"/v1/reports/{report}/submit", headers=reporting.member())
    assert again.status_code == 409
    assert "under review" in again.json()["detail"]


async def test_each_invalid_field_is_refused_naming_it(reporting: Reporting) -> None:
    await reporting.feed(reporting.requested())
    path = f"/v1/reports/{reporting.unique}-R1"
    cases: list[tuple[dict[str, Any], list[Any]]] = [
        ({"participants": {"adults": -1, "youth": 0}}, ["body", "participants", "adults"]),
        ({"activities": [{"title": "", "held_on": "2027-07-01"}]}, ["body", "activities", 0]),
        ({"outcomes": {"jobs_created": 1.5}}, ["body", "outcomes", "jobs_created"]),
        (
            {"spending": [{"category": "travel", "amount": {"amount_minor": 1, "currency": "XX"}}]},
            ["body", "spending", 0, "amount", "currency"],
        ),
        (
            {
                "spending": [
                    {"category": "travel", "amount": {"amount_minor": 10.5, "currency": "USD"}}
                ]
            },
            ["body", "spending", 0, "amount", "amount_minor"],
        ),
        (
            {"attachments": [{"name": "a", "content_type": "nonsense", "size_bytes": 1}]},
            ["body", "attachments", 0, "content_type"],
        ),
        ({"state": "approved"}, ["body", "state"]),
    ]
    for body, loc in cases:
        answer = await reporting.client.put(path, json=body, headers=reporting.member())
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["detail"][0]["loc"][: len(loc)] == loc, answer.text
    # A category the grant's budget does not have: the stored grant refuses it (409).
    gifts = {"category": "gifts", "amount": {"amount_minor": 1, "currency": "USD"}}
    answer = await reporting.client.put(
        path, json={"spending": [gifts]}, headers=reporting.member()
    )
    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "spending", 0, "category"]
    view = (await reporting.client.get(path, headers=reporting.member())).json()
    assert view["state"] == "requested" and view["draft"] is None  # nothing was written

    # Two dates of one activity are compared on submission, like every gap of a draft.
    backwards = {"title": "x", "held_on": "2027-07-02", "ends_on": "2027-07-01"}
    saved = await reporting.client.put(
        path, json={"activities": [backwards]}, headers=reporting.member()
    )
    assert saved.status_code == 200, saved.text
    submitted = await reporting.client.post(f"{path}/submit", headers=reporting.member())
    assert submitted.status_code == 409, submitted.text
    problems = {tuple(problem["loc"]): problem["msg"] for problem in submitted.json()["detail"]}
    assert problems[("body", "activities", 0, "ends_on")] == "must not be before held_on"


async def test_review_outcomes_show_and_an_approved_report_is_final(reporting: Reporting) -> None:
    await reporting.feed(reporting.requested())
    client, report = reporting.client, f"{reporting.unique}-R1"
    application = f"{reporting.unique}-A1"
    await client.post(f"/v1/reports/{report}/submit", json=REPORT, headers=reporting.member())
    await reporting.feed(
        report_reviewed(
            application,
            report,
            "changes_requested",
            when=at("2027-07-22"),
            comments="Add the venue receipts.",
        )
    )
    view = (await client.get(f"/v1/reports/{report}", headers=reporting.member())).json()
    assert view["state"] == "changes_requested"
    assert view["reviews"][0]["comments"] == "Add the venue receipts."
    assert view["reviews"][0]["reviewer_id"] is None  # officers only
    officer_view = (await client.get(f"/v1/reports/{report}", headers=reporting.officer)).json()
    assert officer_view["reviews"][0]["reviewer_id"] == "demo-reviewer-1"

    resubmitted = await client.post(f"/v1/reports/{report}/submit", headers=reporting.member())
    assert resubmitted.json()["revision"] == 2
    await reporting.feed(report_reviewed(application, report, "approved", when=at("2027-07-25")))
    view = (await client.get(f"/v1/reports/{report}", headers=reporting.member())).json()
    assert view["state"] == "approved"
    assert [review["outcome"] for review in view["reviews"]] == ["changes_requested", "approved"]

    late_edit = await client.put(f"/v1/reports/{report}", json=REPORT, headers=reporting.member())
    assert late_edit.status_code == 409
    late_submit = await client.post(f"/v1/reports/{report}/submit", headers=reporting.member())
    assert late_submit.status_code == 409
    assert "already approved" in late_submit.json()["detail"]
    assert [
        e["payload"]["revision"] for e in await reporting.published(topics.REPORT_SUBMITTED)
    ] == [
        1,
        2,
    ]


async def test_overdue_costs_standing_and_the_late_report_restores_it(
    reporting: Reporting,
) -> None:
    unique = reporting.unique
    member = f"{unique}-m-1"
    # The overdue notice of R2 overtakes its request; R1 is overdue as well.
    await reporting.feed(
        reporting.requested("R1"),
        report_overdue(f"{unique}-A1", f"{unique}-R1", when=at("2027-07-31"), member_id=member),
        report_overdue(
            f"{unique}-A1",
            f"{unique}-R2",
            when=at("2027-07-31"),
            member_id=member,
            due_on=date(2027, 7, 30),
        ),
        reporting.requested("R2"),
    )
    lost = await reporting.published(topics.MEMBER_STANDING_CHANGED)
    assert [(e["payload"]["good_standing"], e["payload"]["reason"]) for e in lost] == [
        (False, "report_overdue"),
        (False, "report_overdue"),
    ]
    reporting.service.clock = lambda: datetime(2027, 8, 2, tzinfo=UTC)
    client = reporting.client
    first = await client.post(
        f"/v1/reports/{unique}-R1/submit", json=REPORT, headers=reporting.member()
    )
    assert first.json()["late"] is True and first.json()["overdue"] is True
    # One report is still overdue: standing stays lost.
    assert len(await reporting.published(topics.MEMBER_STANDING_CHANGED)) == 2
    await client.post(f"/v1/reports/{unique}-R2/submit", json=REPORT, headers=reporting.member())
    changes = await reporting.published(topics.MEMBER_STANDING_CHANGED)
    assert len(changes) == 3
    assert changes[-1]["payload"] == {
        "member_id": member,
        "good_standing": True,
        "reason": "report_received",
        "application_id": f"{unique}-A1",
        "as_of": "2027-08-02",
    }
    # A redelivered overdue notice changes nothing.
    await reporting.feed(
        report_overdue(f"{unique}-A1", f"{unique}-R1", when=at("2027-07-31"), member_id=member)
    )
    assert len(await reporting.published(topics.MEMBER_STANDING_CHANGED)) == 3


async def test_analytics_are_for_officers_and_match_the_hand_computed_history(
    reporting: Reporting,
) -> None:
    await reporting.feed(*history(prefix=f"{reporting.unique}-"))
    client = reporting.client
    program = "AUPAP"  # other tests on the same database have their own application ids
    where = {"member_id": "m-2", "group_by": "member"}
    assert (await client.get("/v1/analytics/money")).status_code == 401
    for role in (Role.APPLICANT, Role.REVIEWER):
        headers = reporting.headers(role, "m-1" if role is Role.APPLICANT else None)
        assert (await client.get("/v1/analytics/money", headers=headers)).status_code == 403
        assert (await client.get("/v1/analytics/money.csv", headers=headers)).status_code == 403
    unknown = await client.get("/v1/analytics/secrets", headers=reporting.officer)
    assert unknown.status_code == 422
    bad_group = await client.get(
        "/v1/analytics/money", params={"group_by": "city"}, headers=reporting.officer
    )
    assert bad_group.status_code == 422

    # Member m-2 only has A2 in this database's histories; one row per history fed.
    table = await client.get("/v1/analytics/applications", params=where, headers=reporting.officer)
    assert table.status_code == 200
    rows = table.json()["rows"]
    assert rows and all(row["declined"] == row["applications"] for row in rows)

    mine = {"program": program, "group_by": "all"}
    money = (await client.get("/v1/analytics/money", params=mine, headers=reporting.officer)).json()
    assert money["columns"][:3] == ["group", "label", "currency"]
    exported = await client.get("/v1/analytics/money.csv", params=mine, headers=reporting.officer)
    assert exported.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(parsed) == len(money["rows"])
    for original, row in zip(money["rows"], parsed, strict=True):
        for column in (
            "requested_minor",
            "awarded_minor",
            "paid_minor",
            "refunded_minor",
            "refund_received_minor",
        ):
            assert int(row[column]) == original[column]


def compared(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per group: the application counts, and (planned, reported, difference) per outcome."""
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        group = groups.setdefault(
            row["group"],
            {
                "applications_planned": row["applications_planned"],
                "applications_reported": row["applications_reported"],
            },
        )
        group[row["outcome"]] = (row["planned"], row["reported"], row["difference"])
    return groups


async def test_planned_outcomes_against_reported_per_program_and_application_in_json_and_csv(
    reporting_alone: Reporting,
) -> None:
    reporting = reporting_alone
    prefix = f"{reporting.unique}-"
    await reporting.feed(*history(prefix=prefix))
    await reporting.feed(*history(prefix=prefix)[-12:])  # redelivered: the same figures
    client, officer = reporting.client, reporting.officer
    expected = EXPECTED["planned_vs_actual"]

    async def table(**params: str) -> dict[str, Any]:
        answer = await client.get("/v1/analytics/planned-vs-actual", params=params, headers=officer)
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    by_program = await table(group_by="program")
    assert by_program["columns"] == [
        "group",
        "label",
        "outcome",
        "applications_planned",
        "planned",
        "applications_reported",
        "reported",
        "difference",
    ]
    assert compared(by_program["rows"]) == {
        "AUPAP": expected["AUPAP"],
        "YAP-TNA": expected["YAP-TNA"],
    }
    by_application = await table(group_by="application")
    assert compared(by_application["rows"]) == {
        f"{prefix}A1": expected["AUPAP"],
        f"{prefix}A3": expected["YAP-TNA"],
    }
    alone = await table(group_by="application", program="YAP-TNA")
    assert {row["group"] for row in alone["rows"]} == {f"{prefix}A3"}

    exported = await client.get(
        "/v1/analytics/planned-vs-actual.csv", params={"group_by": "application"}, headers=officer
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(row["group"], row["outcome"]) for row in parsed] == [
        (row["group"], row["outcome"]) for row in by_application["rows"]
    ]
    a3_students = next(
        row
        for row in parsed
        if row["group"] == f"{prefix}A3" and row["outcome"] == "students_exchanged"
    )
    # No report yet: the plan only, the reported figure and the difference left empty.
    assert (a3_students["planned"], a3_students["reported"], a3_students["difference"]) == (
        "12",
        "",
        "",
    )
    a1_trade = next(
        row for row in parsed if row["group"] == f"{prefix}A1" and row["outcome"] == "trade_leads"
    )
    assert (a1_trade["planned"], a1_trade["reported"], a1_trade["difference"]) == ("4", "6", "2")
    assert compared((await table(group_by="all"))["rows"]) == {"all": expected["all"]}


async def test_the_read_model_stores_what_the_hand_computed_history_says(
    reporting: Reporting,
) -> None:
    prefix = f"{reporting.unique}-"
    await reporting.feed(*history(prefix=prefix))
    await reporting.feed(*history(prefix=prefix))  # every event redelivered
    async with reporting.service.reading() as work:
        everything = await reporting.service.summaries(work)
    summaries = [summary for summary in everything if summary.application_id.startswith(prefix)]
    money = build_table(TableName.MONEY, summaries, Dimension.ALL).rows[0]
    assert money.items() >= EXPECTED["money_usd"].items()
    reports = build_table(TableName.REPORTS, summaries, Dimension.ALL).rows[0]
    assert reports.items() >= EXPECTED["reports"].items()
    cycle = {
        row["measure"]: row
        for row in build_table(TableName.CYCLE_TIMES, summaries, Dimension.ALL).rows
    }
    assert cycle["decision"].items() >= EXPECTED["cycle_times"]["decision"].items()


async def test_two_events_of_one_application_counted_at_once_both_reach_its_summary(
    reporting: Reporting,
) -> None:
    application = f"{reporting.unique}-C1"
    service = reporting.service

    async def count(event: Event) -> None:
        async with service.work() as work:
            await service.count(work, event[1])

    await asyncio.gather(
        count(submitted(application, when=at("2027-01-10"), program="YAP-TNA")),
        count(status(application, 1, "screening", when=at("2027-01-10"), program="YAP-TNA")),
    )
    async with service.reading() as work:
        [summary] = [s for s in await service.summaries(work) if s.application_id == application]
    assert (summary.program_name, summary.stage) == (
        "Young Ambassadors Program: Tri-lateral North America",
        "screening",
    )


async def test_the_dashboard_is_for_officers_signed_in_by_token(reporting: Reporting) -> None:
    await reporting.feed(*history(prefix=f"{reporting.unique}-"))
    client = reporting.client
    anonymous = await client.get("/dashboard")
    assert 'action="/dashboard/sign-in"' in anonymous.text and "data-chart" not in anonymous.text
    officer = reporting.officer["Authorization"].removeprefix("Bearer ")
    # Neither a token in the address nor a bearer header opens the pages: the form does.
    for shut in (
        await client.get("/dashboard", params={"token": officer}),
        await client.get("/dashboard", headers=reporting.officer),
    ):
        assert "data-chart" not in shut.text and "set-cookie" not in shut.headers

    async def sign_in(token: str) -> httpx.Response:
        return await client.post("/dashboard/sign-in", data={"token": token})

    applicant = reporting.member()["Authorization"].removeprefix("Bearer ")
    refused = await sign_in(applicant)
    assert refused.status_code == 403 and "for program officers" in refused.text
    assert "set-cookie" not in refused.headers
    assert (await sign_in("not-a-token")).status_code == 401

    signed_in = await sign_in(officer)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/dashboard"
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    page = await client.get("/dashboard")  # the client keeps the cookie
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert 'data-chart="applications-by-status"' in page.text
    assert "<script" not in page.text and "http://" not in page.text.replace(
        "http://www.w3.org/2000/svg", ""
    )

    program = await client.get("/dashboard/programs/YAP-TNA")
    assert program.status_code == 200 and "Young Ambassadors" in program.text
    assert (await client.get("/dashboard/programs/NOPE")).status_code == 404
    assert (await client.get("/dashboard/programs/bad%20code")).status_code == 422
    export = await client.get("/dashboard/export/outcomes.csv", params={"group_by": "all"})
    assert export.status_code == 200 and export.text.startswith("group,label,reports")
    assert export.headers["cache-control"] == "no-store"

    # Signing out is a form with the page's CSRF value: another site cannot sign anyone out.
    assert (await client.post("/dashboard/sign-out", data={"csrf": "guess"})).status_code == 403
    signed_in = await sign_in(officer)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', (await client.get("/dashboard")).text)
    assert csrf
    out = await client.post("/dashboard/sign-out", data={"csrf": csrf.group(1)})
    assert out.status_code == 303
    assert "data-chart" not in (await client.get("/dashboard/programs/YAP-TNA")).text


async def test_the_demo_member_sees_a_seeded_report(reporting: Reporting) -> None:
    async with reporting.service.work() as work:
        await seed_demo(work)  # the shared PostgreSQL database may have it already
    async with reporting.service.work() as work:
        assert not await seed_demo(work)  # once only
    demo = reporting.headers(Role.APPLICANT, "demo-member-1")
    view = (await reporting.client.get(f"/v1/reports/{DEMO_REPORT}", headers=demo)).json()
    assert view["state"] == "approved"
    assert view["actual_spending"] == {"amount_minor": 1_470_000, "currency": "USD"}
    assert view["reviews"][0]["outcome"] == "approved"


async def test_an_upgrade_keeps_one_inbox_row_per_event_the_old_consumers_both_noted(
    isolated_database_url: str,
) -> None:
    # Before the shared consumer, events of the report topics were noted twice: once by
    # analytics and once by the report obligations.
    url = isolated_database_url
    await asyncio.to_thread(upgrade, "reporting", url, "reporting_0002")
    inbox = messaging.inbox
    request, reserved = topics.REQUEST_REPORT.name, topics.FUNDS_RESERVED.name
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                inbox.insert(),
                [
                    {
                        "event_id": event_id,
                        "consumer": consumer,
                        "topic": topic,
                        "processed_at": NOW,
                    }
                    for event_id, consumer, topic in (
                        ("e-1", "reporting.analytics", request),
                        ("e-1", "reporting.obligations", request),
                        ("e-2", "reporting.analytics", reserved),
                    )
                ],
            )
        await asyncio.to_thread(upgrade, "reporting", url)
        async with engine.connect() as connection:
            rows = (await connection.execute(select(inbox.c.event_id, inbox.c.consumer))).all()
    finally:
        await engine.dispose()
    assert sorted(tuple(row) for row in rows) == [
        ("e-1", f"reporting.{request}"),
        ("e-2", f"reporting.{reserved}"),
    ]
