"""The portal's report form: what it sends reporting, and where reporting's answers land."""

from __future__ import annotations

import pytest

from services.intake.portal_reports import ReportFormError, report_of
from shared.web.forms import Problems


def test_empty_rows_and_groups_are_not_sent_and_amounts_go_in_minor_units() -> None:
    read = report_of(
        {
            "participants.adults": "",
            "participants.youth": "",
            "activities[0].title": "",
            "activities[1].title": "Site visits",
            "activities[1].held_on": "2027-06-08",
            "spending[0].description": "",
            "spending[0].amount": "",
            "spending[1].category": "accommodation",
            "spending[1].amount": "380000",
            "spending[1].amount.currency": "KES",
            "outcomes.trade_leads": "3",
            "lessons_learned": "  Book early. ",
        }
    )
    body = read.body.model_dump(mode="json")
    assert body["participants"] is None
    assert body["outcomes"] == {"trade_leads": 3}
    assert [a["title"] for a in body["activities"]] == ["Site visits"]
    assert body["spending"][0]["amount"] == {"amount_minor": 38_000_000, "currency": "KES"}
    assert body["lessons_learned"] == "Book early."
    assert read.rows == {"activities": [1], "spending": [1], "attachments": []}


def test_reportings_problems_land_at_the_rows_shown_in_a_persons_words() -> None:
    read = report_of(
        {
            "activities[0].title": "",
            "activities[2].title": "Forum",
            "activities[2].held_on": "2027-07-09",
            "spending[3].category": "gifts",
            "spending[3].amount": "10",
        }
    )
    found = Problems()
    found.add("activities[0].held_on", "is in the future: report what was held")
    found.add("spending[0].amount.currency", "spending[0].amount.currency: Input should be USD")
    found.add("participants.adults", "participants.adults: Input should be greater than 0")
    found.add("lessons_learned", "required to submit")
    shown = read.problems(found)
    assert shown.at("activities[2].held_on") == [
        "Activity 3's first day is in the future: report what was held"
    ]
    assert shown.under("spending[3].amount") == ["Spending line 4's amount should be USD"]
    assert shown.at("participants.adults") == ["The number of adults should be greater than 0"]
    assert shown.at("lessons_learned") == ["required to submit"]


@pytest.mark.parametrize(
    ("name", "typed", "why"),
    [
        ("participants.adults", "six", "The number of adults should be a whole number"),
        ("spending[0].amount", "12.345", "Spending line 1's amount should have at most 2"),
        ("attachments[0].size_bytes", "1.5", "Attachment 1's size in bytes should be a whole"),
    ],
)
def test_what_is_no_number_is_refused_before_reporting_is_asked(
    name: str, typed: str, why: str
) -> None:
    with pytest.raises(ReportFormError) as refused:
        report_of({name: typed, "spending[0].description": "Flights"})
    assert refused.value.problems.at(name)[0].startswith(why)
