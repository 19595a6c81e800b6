"""Views built from records: what a record gives, what the caller gives, and what is missing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import pytest
from pydantic import ValidationError

from shared.views import View, copy_of


class Colour(StrEnum):
    RED = "red"


@dataclass(frozen=True)
class Row:
    id: str
    colour: Colour
    at: datetime
    secret: str


class RowView(View):
    id: str
    colour: str
    at: datetime
    note: str = "none"


AT = datetime(2027, 1, 1, tzinfo=UTC)


def test_a_view_takes_the_fields_it_names_and_nothing_else() -> None:
    view = RowView.of(Row("r-1", Colour.RED, AT, secret="s3cret"))
    assert view.model_dump() == {"id": "r-1", "colour": "red", "at": AT, "note": "none"}


def test_what_the_caller_gives_replaces_the_record_s_own() -> None:
    view = copy_of(RowView, Row("r-1", Colour.RED, AT, "x"), id="shown", note="given")
    assert (view.id, view.note) == ("shown", "given")


def test_a_field_the_record_lacks_is_refused_rather_than_left_blank() -> None:
    @dataclass
    class Renamed:
        identifier: str
        colour: str
        at: datetime

    with pytest.raises(ValidationError, match="id"):
        RowView.of(Renamed("r-1", "red", AT))
