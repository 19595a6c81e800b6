"""Answers built from records: a view copies a record's attributes of the same names."""

from __future__ import annotations

from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict

V = TypeVar("V", bound=BaseModel)


def copy_of(view: type[V], record: object, /, **given: Any) -> V:
    """A ``view`` of ``record``'s attributes named as its fields, ``given`` in place of its own.

    A field the record lacks and ``given`` does not name is left to its default, or refused
    as missing, so a renamed attribute fails loudly rather than going blank.
    """
    copied = {
        name: getattr(record, name)
        for name in view.model_fields
        if name not in given and hasattr(record, name)
    }
    return view.model_validate({**copied, **given}, from_attributes=True)


class View(BaseModel):
    """A view whose fields are a record's attributes of the same names."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, record: object) -> Self:
        return copy_of(cls, record)
