"""The portal's draft form with partners beyond the first: the fieldsets it offers, the
draft it reads back, and each check shown at the partner it is about."""

from __future__ import annotations

import pytest

from services.intake.domain import DRAFT_EXAMPLE, DraftFields
from services.intake.portal_forms import (
    DraftFormError,
    draft_of,
    form_of,
    label,
    problems_of,
    shown,
)
from shared.errors import Problem


def filled(**values: str) -> dict[str, str]:
    form = form_of(DraftFields.model_validate(DRAFT_EXAMPLE)).values
    return {**form, **values}


GUELPH = {
    "other_partners[1].name": "Guelph",
    "other_partners[1].country": "CA",
    "other_partners[1].contact_name": "Owen Tremblay",
    "other_partners[1].contact_email": "twinning@guelph.example.org",
}


def test_a_new_form_offers_two_more_partners_and_one_more_once_they_are_filled() -> None:
    form = form_of(DraftFields())
    assert form.partners == 2
    assert "other_partners[1].contact_email" in form.inputs
    # A row left empty in between is dropped; the one filled becomes the second partner.
    draft = draft_of(filled(**GUELPH))
    assert [(p.name, p.country) for p in draft.every_partner()] == [
        ("Nairobi", "KE"),
        ("Guelph", "CA"),
    ]
    again = form_of(draft)
    assert again.values["other_partners[0].name"] == "Guelph"
    assert again.partners == 2
    three = shown({**again.values, **{k.replace("[1]", "[2]"): v for k, v in GUELPH.items()}})
    assert three.partners == 4


def test_a_partner_field_wrong_is_named_at_the_row_shown() -> None:
    with pytest.raises(DraftFormError) as refused:
        draft_of(filled(**{**GUELPH, "other_partners[1].country": "Canada"}))
    [message] = refused.value.problems.at("other_partners[1].country")
    assert message.startswith("Partner 3's country")


def test_the_service_checks_are_worded_for_the_partner_they_are_about() -> None:
    found = problems_of(
        [
            Problem("partners", "a partner in CA is required", "rule"),
            Problem("other_partners[0].contact_email", "each partner city needs its own", "rule"),
        ]
    )
    assert found.at("partners") == ["a partner in CA is required"]
    assert label("other_partners[0].contact_email") == "Partner 2's contact email"
