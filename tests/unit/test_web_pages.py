"""The pages' shared pieces: amounts as people type them, problems placed at their fields,
and templates that escape whatever they are given."""

from __future__ import annotations

import pytest

from services.intake import pages
from services.intake.portal_forms import DraftFormError, draft_of, form_of
from shared.web.forms import Problems, major_units, minor_units
from shared.web.render import sentence


@pytest.mark.parametrize(
    ("typed", "currency", "minor"),
    [
        ("1250", "USD", 125_000),
        ("1,250.5", "USD", 125_050),
        (" 1 250.50 ", "USD", 125_050),
        ("0.07", "USD", 7),
        ("400000", "KES", 40_000_000),
        ("1250", "JPY", 1250),
    ],
)
def test_amounts_are_read_as_people_type_them(typed: str, currency: str, minor: int) -> None:
    assert minor_units(typed, currency) == minor
    assert minor_units(major_units(minor, currency), currency) == minor


@pytest.mark.parametrize(
    ("typed", "currency", "why"),
    [
        ("12.345", "USD", "at most 2 decimals"),
        ("12.5", "JPY", "no decimals"),
        ("-5", "USD", "an amount such as"),
        ("ten", "USD", "an amount such as"),
        ("", "USD", "an amount such as"),
    ],
)
def test_an_amount_that_is_none_says_why(typed: str, currency: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        minor_units(typed, currency)


def test_problems_land_at_their_input_or_group_and_the_rest_is_listed() -> None:
    problems = Problems()
    problems.add("requested.currency", "must be in USD")
    problems.add("budget_lines", "add at least one budget line")
    problems.add("member", "the membership is not active")
    assert problems.under("requested") == ["must be in USD"]
    assert problems.under("request") == []
    assert problems.elsewhere(["requested"], ["budget_lines"]) == ["the membership is not active"]
    assert sentence("add at least one budget line") == "Add at least one budget line."


def test_an_empty_budget_row_is_left_out_and_a_bad_row_named_as_shown() -> None:
    form = {
        "title": "Water kiosks",
        "budget_lines[0].description": "",
        "budget_lines[0].amount": "",
        "budget_lines[1].category": "",
        "budget_lines[1].description": "Flights",
        "budget_lines[1].amount": "1200",
        "budget_lines[1].amount.currency": "USD",
    }
    with pytest.raises(DraftFormError) as refused:
        draft_of(form)
    assert refused.value.problems == {
        "budget_lines[1].category": ["Budget line 2's category is required"]
    }
    form["budget_lines[1].category"] = "travel"
    draft = draft_of(form)
    assert draft.title == "Water kiosks"
    assert [line.amount.amount_minor for line in draft.budget_lines or ()] == [120_000]
    again = form_of(draft)
    assert again.values["budget_lines[0].amount"] == "1200.00"
    assert again.lines == 3  # the line, and two spare rows


def test_the_templates_escape_what_they_are_given() -> None:
    html = pages.message_page("<b>Title</b>", "<script>alert('x')</script>")
    assert "<script>alert" not in html and "<b>Title" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
