"""Program analytics against a hand-computed history, in any delivery order."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest

from services.reporting.analytics.facts import Fact, facts_from_event, merge_facts
from services.reporting.analytics.summaries import ApplicationSummary, summarize
from services.reporting.analytics.tables import (
    AnalyticsTable,
    Dimension,
    TableName,
    build_table,
    to_csv,
)
from services.reporting.charts import Chart, Series, column_chart, horizontal_bar_chart
from services.reporting.pages import PAGES
from shared.contracts.intake import PlannedOutcomes
from tests.support.reporting import (
    EXPECTED,
    Event,
    again,
    at,
    award_adjusted,
    history,
    report_requested,
    report_submitted_event,
    rows_by,
    settled,
    status,
    submitted,
    usd,
)


def summaries_from(events: Sequence[Event]) -> list[ApplicationSummary]:
    facts: list[Fact] = []
    for _topic, envelope in events:
        facts += facts_from_event(envelope)
    by_application: dict[str, list[Fact]] = defaultdict(list)
    for fact in merge_facts(facts):
        by_application[fact.application_id].append(fact)
    return [summarize(key, by_application[key]) for key in sorted(by_application)]


def test_figures_match_the_hand_computed_history() -> None:
    summaries = summaries_from(history())

    applications = rows_by(build_table(TableName.APPLICATIONS, summaries, Dimension.ALL), "group")
    assert applications["all"].items() >= EXPECTED["applications"]["all"].items()
    by_program = rows_by(build_table(TableName.APPLICATIONS, summaries, Dimension.PROGRAM), "group")
    for program in ("AUPAP", "YAP-TNA"):
        assert by_program[program].items() >= EXPECTED["applications"][program].items()
    assert by_program["AUPAP"]["label"] == "African Urban Poverty Alleviation Program"

    statuses = build_table(TableName.STATUSES, summaries, Dimension.ALL)
    assert {row["stage"]: row["applications"] for row in statuses.rows} == EXPECTED["statuses"]

    money = rows_by(build_table(TableName.MONEY, summaries, Dimension.ALL), "currency")
    assert money.keys() == {"USD"}
    assert money["USD"].items() >= EXPECTED["money_usd"].items()
    awarded = {
        row["group"]: row["awarded_minor"]
        for row in build_table(TableName.MONEY, summaries, Dimension.PROGRAM).rows
    }
    assert awarded == EXPECTED["money_by_program"]

    cycle = rows_by(build_table(TableName.CYCLE_TIMES, summaries, Dimension.ALL), "measure")
    for measure, expected in EXPECTED["cycle_times"].items():
        assert cycle[measure].items() >= expected.items(), measure

    reports = build_table(TableName.REPORTS, summaries, Dimension.ALL).rows[0]
    assert reports.items() >= EXPECTED["reports"].items()
    outcomes = build_table(TableName.OUTCOMES, summaries, Dimension.ALL).rows[0]
    assert outcomes.items() >= EXPECTED["outcomes"].items()
    compared = build_table(TableName.PLANNED_VS_ACTUAL, summaries, Dimension.ALL).rows
    assert {row["outcome"]: row["difference"] for row in compared} == {
        "agreements_signed": 0,
        "trade_leads": 2,
        "students_exchanged": 0,
        "follow_up_projects": -1,
    }

    cash = build_table(TableName.CASH_FLOW, summaries, Dimension.ALL)
    assert [(row["month"], row["due_minor"], row["paid_minor"]) for row in cash.rows] == EXPECTED[
        "cash_flow"
    ]

    budget = build_table(TableName.BUDGET_CURRENCIES, summaries, Dimension.ALL)
    assert {
        (row["currency"], row["converted_currency"]): (row["amount_minor"], row["converted_minor"])
        for row in budget.rows
    } == EXPECTED["budget_currencies"]


def test_breakdowns_by_country_focus_area_and_member() -> None:
    summaries = summaries_from(history())
    countries = rows_by(
        build_table(TableName.APPLICATIONS, summaries, Dimension.PARTNER_COUNTRY), "group"
    )
    assert {key: row["applications"] for key, row in countries.items()} == {
        "CA": 1,
        "KE": 1,
        "MX": 1,
        "NG": 1,
    }
    focus = rows_by(build_table(TableName.MONEY, summaries, Dimension.FOCUS_AREA), "group")
    assert focus["youth_and_education"]["awarded_minor"] == 1_200_000
    assert focus["community_development"]["paid_minor"] == 800_000
    cycles = build_table(TableName.APPLICATIONS, summaries, Dimension.CYCLE).rows
    assert [(row["group"], row["label"]) for row in cycles] == [("2027", "2027")]
    assert {row["label"] for row in countries.values()} == {"CA", "KE", "MX", "NG"}
    members = rows_by(build_table(TableName.APPLICATIONS, summaries, Dimension.MEMBER), "group")
    assert members["m-1"]["applications"] == 2
    assert members["m-1"]["label"] == "Springfield"


@pytest.mark.parametrize("seed", range(12))
def test_any_delivery_order_and_any_duplicates_give_the_same_figures(seed: int) -> None:
    events = history()
    expected = [summary.model_dump() for summary in summaries_from(events)]
    shuffled = list(events) + random.Random(seed).sample(events, k=8)  # extra redeliveries
    random.Random(seed).shuffle(shuffled)
    assert [summary.model_dump() for summary in summaries_from(shuffled)] == expected


def test_a_late_copy_of_a_settlement_does_not_move_the_first_payment() -> None:
    events = history()
    copies = [
        event for event in events if event[1].payload.__class__.__name__ == "DisbursementSettled"
    ]
    assert len(copies) == 4  # including the re-sent one, a day later
    forward = summaries_from(events)
    backward = summaries_from(list(reversed(events)))
    assert forward == backward
    a1 = next(summary for summary in forward if summary.application_id == "A1")
    assert a1.first_paid_at is not None and a1.first_paid_at.isoformat().startswith("2027-02-01")


def test_every_table_parses_back_from_csv_to_the_same_numbers() -> None:
    summaries = summaries_from(history())
    for name in TableName:
        for by in (Dimension.ALL, Dimension.PROGRAM, Dimension.MEMBER, Dimension.APPLICATION):
            table = build_table(name, summaries, by)
            parsed = list(csv.DictReader(io.StringIO(to_csv(table))))
            assert len(parsed) == len(table.rows)
            for original, row in zip(table.rows, parsed, strict=True):
                assert list(row) == table.columns
                for column in table.columns:
                    value = original[column]
                    if isinstance(value, int):
                        assert int(row[column]) == value, (name, column)
                    else:
                        assert row[column] == ("" if value is None else value), (name, column)


def test_an_application_known_only_by_its_status_still_counts() -> None:
    summaries = summaries_from([status("X1", 1, "screening", when=at("2027-01-01"))])
    assert summaries[0].program_code == "AUPAP"
    assert summaries[0].stage == "screening"
    assert summaries[0].cycle == "unknown"


def test_a_trilateral_exchange_counts_once_under_all_its_partner_countries() -> None:
    topic, envelope = submitted("T1", when=at("2027-01-01"), program="YAP-TNA", country="MX")
    puebla = envelope.payload.partner
    guelph = puebla.model_copy(
        update={"name": "Guelph", "country": "CA", "contact_email": "twin@guelph.example"}
    )
    payload = envelope.payload.model_copy(update={"other_partners": [guelph]})
    [summary] = summaries_from([(topic, envelope.model_copy(update={"payload": payload}))])
    assert summary.partner_country == "CA+MX"
    by_country = build_table(TableName.APPLICATIONS, [summary], Dimension.PARTNER_COUNTRY)
    assert [row["group"] for row in by_country.rows] == ["CA+MX"]


def drawn(chart: Chart) -> str:
    """The chart as the dashboard's template draws it."""
    return PAGES.text("chart.html", chart=chart)


def test_bar_charts_carry_every_value_and_escape_labels() -> None:
    svg = drawn(
        horizontal_bar_chart(
            chart_id="money",
            title="Money <by> program",
            labels=["A&B", "C"],
            series=[Series("Awarded", [300, 100]), Series("Paid", [200, 0])],
            formatter=lambda value: f"{value} units",
            caption="Awarded 400 units",
        )
    )
    assert svg.count('class="bar"') == 4
    assert 'data-value="300"' in svg and 'data-label="A&amp;B"' in svg
    assert "&lt;by&gt;" in svg and "<by>" not in svg
    assert "<figcaption>Awarded 400 units</figcaption>" in svg
    columns = drawn(
        column_chart(
            chart_id="months",
            title="Cash",
            labels=["2027-01"],
            series=[Series("Paid", [5])],
            formatter=str,
            caption="Paid 5",
        )
    )
    assert columns.count('class="bar"') == 1
    empty = drawn(
        column_chart(
            chart_id="none", title="Cash", labels=[], series=[], formatter=str, caption="-"
        )
    )
    assert "No data yet" in empty and 'class="bar"' not in empty


def test_an_amended_report_request_moves_the_due_date_and_a_resent_one_changes_nothing() -> None:
    events = history()
    original = report_requested(
        "A3", "R3", when=at("2027-07-01"), program="YAP-TNA", awarded=1_200_000
    )
    assert summaries_from([*events, again(original, at("2027-07-02"))]) == summaries_from(events)

    moved = report_requested(
        "A3",
        "R3",
        when=at("2027-07-10"),
        program="YAP-TNA",
        awarded=1_200_000,
        due_on=date(2027, 8, 15),
    )
    a3 = next(s for s in summaries_from([moved, *events]) if s.application_id == "A3")
    assert [(report.report_id, report.due_on) for report in a3.reports] == [
        ("R3", date(2027, 8, 15))
    ]
    assert [(t.number, t.due_on, t.paid) for t in a3.tranches] == [
        (1, date(2027, 3, 1), True),
        (2, date(2027, 8, 15), False),
    ]


def summary_of(application_id: str, events: Sequence[Event]) -> ApplicationSummary:
    return next(s for s in summaries_from(events) if s.application_id == application_id)


def test_an_amended_award_spreads_what_is_left_over_the_tranches_not_paid() -> None:
    # A3 was awarded 12,000.00 and paid its 70% advance (8,400.00); an amendment then cut
    # the award to 10,000.00, so 1,600.00 is left for the final tranche, not 3,600.00.
    events = [*history(), award_adjusted("A3", 1_000_000, when=at("2027-05-02"), amendment="1")]
    a3 = summary_of("A3", events)
    assert a3.awarded == usd(1_000_000)
    assert [(t.number, t.amount, t.paid) for t in a3.tranches] == [
        (1, usd(840_000), True),
        (2, usd(160_000), False),
    ]
    cash = build_table(TableName.CASH_FLOW, summaries_from(events), Dimension.ALL)
    assert [(row["month"], row["due_minor"], row["paid_minor"]) for row in cash.rows] == [
        ("2027-02", 0, 560_000),
        ("2027-03", 0, 840_000),
        ("2027-07", 160_000, 0),
        ("2027-08", 0, 240_000),
    ]


def test_an_award_amended_before_any_payment_keeps_the_programs_shares() -> None:
    events = [
        submitted("A5", when=at("2027-01-10")),
        status("A5", 1, "awarded", when=at("2027-01-20"), awarded=1_000_000),
        award_adjusted("A5", 800_000, when=at("2027-01-25"), amendment="1"),
        # The workflow's next status carries the amended award: nothing moves again.
        status("A5", 2, "advance_payment", when=at("2027-01-26"), awarded=800_000),
    ]
    a5 = summary_of("A5", events)
    assert [t.amount for t in a5.tranches] == [usd(560_000), usd(240_000)]
    paid = summary_of("A5", [*events, settled("A5", 1, 560_000, when=at("2027-02-01"))])
    assert [(t.amount, t.paid) for t in paid.tranches] == [
        (usd(560_000), True),
        (usd(240_000), False),
    ]


def test_a_tranche_shows_what_was_actually_paid() -> None:
    # The final tranche of A1 (planned 2,400.00) was paid 2,000.00 after an underspend.
    events = [event for event in history() if not _is_final_payment_of_a1(event)]
    events.append(settled("A1", 2, 200_000, when=at("2027-08-05")))
    a1 = summary_of("A1", events)
    assert [(t.amount, t.paid) for t in a1.tranches] == [
        (usd(560_000), True),
        (usd(200_000), True),
    ]
    assert a1.paid.by_currency == {"USD": 760_000}


def _is_final_payment_of_a1(event: Event) -> bool:
    payload = event[1].payload
    return getattr(payload, "instruction_id", None) == "A1:2"


def planned_vs_actual(table: AnalyticsTable) -> dict[str, dict[str, Any]]:
    """Per group: the application counts, and (planned, reported, difference) per outcome."""
    groups: dict[str, dict[str, Any]] = {}
    for row in table.rows:
        group = groups.setdefault(
            str(row["group"]),
            {
                "applications_planned": row["applications_planned"],
                "applications_reported": row["applications_reported"],
            },
        )
        group[str(row["outcome"])] = (row["planned"], row["reported"], row["difference"])
    return groups


def test_planned_outcomes_against_the_reported_ones_per_program_and_per_application() -> None:
    summaries = summaries_from(history())
    expected = EXPECTED["planned_vs_actual"]
    overall = build_table(TableName.PLANNED_VS_ACTUAL, summaries, Dimension.ALL)
    assert planned_vs_actual(overall) == {"all": expected["all"]}
    programs = build_table(TableName.PLANNED_VS_ACTUAL, summaries, Dimension.PROGRAM)
    assert planned_vs_actual(programs) == {
        "AUPAP": expected["AUPAP"],
        "YAP-TNA": expected["YAP-TNA"],
    }
    # One application is one program's only compared application here: the same figures.
    applications = build_table(TableName.PLANNED_VS_ACTUAL, summaries, Dimension.APPLICATION)
    assert planned_vs_actual(applications) == {
        "A1": expected["AUPAP"],
        "A3": expected["YAP-TNA"],
    }
    assert {row["label"] for row in applications.rows} == {"A1 (Springfield)", "A3 (Springfield)"}


def test_the_latest_report_revision_gives_the_reported_outcomes_whatever_the_order() -> None:
    first = report_submitted_event("A1", "R1", when=at("2027-07-25"), trade_leads=1)
    second = report_submitted_event("A1", "R1", when=at("2027-07-28"), revision=2, trade_leads=9)
    plan = submitted(
        "A1",
        when=at("2027-01-10"),
        expected=PlannedOutcomes(trade_leads=4),
    )
    for events in ([plan, first, second], [second, plan, first], [first, second, plan, first]):
        a1 = summary_of("A1", events)
        assert a1.reported_outcomes == {
            "agreements_signed": 2,
            "trade_leads": 9,
            "students_exchanged": 0,
            "follow_up_projects": 1,
        }
        row = rows_by(
            build_table(TableName.PLANNED_VS_ACTUAL, [a1], Dimension.APPLICATION), "outcome"
        )["trade_leads"]
        assert (row["planned"], row["reported"], row["difference"]) == (4, 9, 5)


def test_an_application_from_before_expected_outcomes_were_carried_shows_none() -> None:
    events = [
        submitted("A9", when=at("2027-01-10")),
        status("A9", 1, "awarded", when=at("2027-01-20"), awarded=800_000),
        report_submitted_event("A9", "R9", when=at("2027-07-25")),
    ]
    a9 = summary_of("A9", events)
    assert a9.planned_outcomes is None and a9.reported_outcomes is not None
    for by in (Dimension.APPLICATION, Dimension.PROGRAM, Dimension.ALL):
        assert build_table(TableName.PLANNED_VS_ACTUAL, [a9], by).rows == []
    # Its report still counts among the outcomes reported.
    assert build_table(TableName.OUTCOMES, [a9], Dimension.ALL).rows[0]["agreements_signed"] == 2

    # A submission fact stored before the plan was kept reads the same way.
    facts = [fact for _topic, envelope in events for fact in facts_from_event(envelope)]
    for fact in facts:
        fact.data.pop("planned", None)
    assert summarize("A9", facts).planned_outcomes is None


def test_an_application_with_a_plan_and_no_report_yet_shows_the_plan_only() -> None:
    plan = PlannedOutcomes(agreements_signed=2, students_exchanged=8)
    a7 = summary_of(
        "A7",
        [
            submitted("A7", when=at("2027-01-10"), expected=plan),
            status("A7", 1, "review", when=at("2027-01-12")),
        ],
    )
    rows = rows_by(build_table(TableName.PLANNED_VS_ACTUAL, [a7], Dimension.APPLICATION), "outcome")
    assert {name: row["planned"] for name, row in rows.items()} == plan.model_dump()
    assert all(row["reported"] is None and row["difference"] is None for row in rows.values())
    assert all(row["applications_reported"] == 0 for row in rows.values())
