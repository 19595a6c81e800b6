"""Program analytics against a hand-computed history, in any delivery order."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import date

import pytest

from services.reporting.analytics import (
    ApplicationSummary,
    Dimension,
    Fact,
    TableName,
    build_table,
    facts_from_event,
    merge_facts,
    summarize,
    to_csv,
)
from services.reporting.charts import Series, column_chart, horizontal_bar_chart
from tests.support.reporting import (
    EXPECTED,
    Event,
    again,
    at,
    history,
    report_requested,
    rows_by,
)


def summaries_from(events: Sequence[Event]) -> list[ApplicationSummary]:
    facts: list[Fact] = []
    for topic, envelope in events:
        facts += facts_from_event(topic.name, envelope)
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
        for by in (Dimension.ALL, Dimension.PROGRAM, Dimension.MEMBER):
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
    from tests.support.reporting import status

    summaries = summaries_from([status("X1", 1, "screening", when=at("2027-01-01"))])
    assert summaries[0].program_code == "AUPAP"
    assert summaries[0].stage == "screening"
    assert summaries[0].cycle == "unknown"


def test_bar_charts_carry_every_value_and_escape_labels() -> None:
    svg = horizontal_bar_chart(
        chart_id="money",
        title="Money <by> program",
        labels=["A&B", "C"],
        series=[Series("Awarded", [300, 100]), Series("Paid", [200, 0])],
        formatter=lambda value: f"{value} units",
        caption="Awarded 400 units",
    )
    assert svg.count("class='bar'") == 4
    assert "data-value='300'" in svg and "A&amp;B" in svg and "&lt;by&gt;" in svg
    assert "<figcaption>Awarded 400 units</figcaption>" in svg
    columns = column_chart(
        chart_id="months",
        title="Cash",
        labels=["2027-01"],
        series=[Series("Paid", [5])],
        formatter=str,
        caption="Paid 5",
    )
    assert columns.count("class='bar'") == 1
    empty = column_chart(
        chart_id="none", title="Cash", labels=[], series=[], formatter=str, caption="-"
    )
    assert "No data yet" in empty and "class='bar'" not in empty


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
