"""Every text, number and list of the contract is bounded, and every column that stores a
contract field is at least as long as the field allows.

A column stores the contract field of its own name (``member_city`` stores
``RequestReviews.member_city``), or the one its ``info`` names (``stores(Model, "field")``),
or nothing a contract bounds (``info={"stores": None}``). Names of up to 200 characters
went into review columns of 120: on PostgreSQL the review request was dead-lettered and
the application never got reviewers.
"""

from __future__ import annotations

import importlib
import re._parser as _parser
import types
import typing
import uuid
from collections.abc import Iterator
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from sqlalchemy import Column, Integer, MetaData, String, Text

from shared.contracts.base import MAX_COUNT
from shared.contracts.envelope import Envelope
from shared.contracts.topics import ALL_TOPICS

STORES = ("intake", "review", "disbursement", "reporting")
MAX_BIGINT = 2**63 - 1


def contract_models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    pending: list[type[BaseModel]] = [Envelope, *(topic.payload for topic in ALL_TOPICS)]
    while pending:
        model = pending.pop()
        if model.__name__ in found:
            continue
        found[model.__name__] = model
        for info in model.model_fields.values():
            pending += [t for t in _types_in(info.annotation) if _is_model(t)]
    return list(found.values())


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _types_in(annotation: Any) -> Iterator[Any]:
    origin = typing.get_origin(annotation)
    if origin is None:
        yield annotation
        return
    if origin is typing.Annotated:
        yield from _types_in(typing.get_args(annotation)[0])
        return
    if origin is Literal:
        yield annotation
        return
    for argument in typing.get_args(annotation):
        yield from _types_in(argument)
    if origin in (list, dict, set, tuple):
        yield origin


def _metadata(info: FieldInfo, kind: type[Any]) -> list[Any]:
    """Constraints of the field, also those of an ``Annotated`` type inside ``X | None``."""
    found = list(info.metadata)
    pending = [info.annotation]
    while pending:
        annotation = pending.pop()
        if typing.get_origin(annotation) is typing.Annotated:
            found += [
                item
                for argument in typing.get_args(annotation)[1:]
                for item in (argument.metadata if isinstance(argument, FieldInfo) else [argument])
            ]
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            pending += typing.get_args(annotation)
    return [item for item in found if isinstance(item, kind)]


def text_bound(info: FieldInfo) -> int | None:
    """The most characters a text field accepts; None when it is not bounded."""
    if any(typing.get_origin(kind) is Literal for kind in _types_in(info.annotation)):
        return max(
            len(str(value))
            for kind in _types_in(info.annotation)
            if typing.get_origin(kind) is Literal
            for value in typing.get_args(kind)
        )
    lengths = [item.max_length for item in _metadata(info, annotated_types.MaxLen)]
    if lengths:
        return min(lengths)
    if uuid.UUID in _types_in(info.annotation):
        return 36
    patterns = [getattr(item, "pattern", None) for item in _metadata(info, object)]
    widths = [_parser.parse(p).getwidth()[1] for p in patterns if p]
    bounded = [width for width in widths if width < _parser.MAXWIDTH]
    return min(bounded) if bounded else None


def fields_of(kind: type[Any]) -> Iterator[tuple[type[BaseModel], str, FieldInfo]]:
    for model in contract_models():
        for name, info in model.model_fields.items():
            if kind in _types_in(info.annotation):
                yield model, name, info


def test_every_text_of_the_contract_has_a_most_length() -> None:
    unbounded = [
        f"{model.__name__}.{name}"
        for model, name, info in fields_of(str)
        if text_bound(info) is None
    ]
    assert unbounded == []


def test_every_number_and_list_of_the_contract_has_a_bound() -> None:
    unbounded = [
        f"{model.__name__}.{name}"
        for model, name, info in fields_of(int)
        if not any(item.le <= MAX_BIGINT for item in _metadata(info, annotated_types.Le))
    ]
    unbounded += [
        f"{model.__name__}.{name}"
        for model, name, info in fields_of(list)
        if not _metadata(info, annotated_types.MaxLen)
    ]
    assert unbounded == []


def service_metadata() -> dict[str, MetaData]:
    found = {
        name: importlib.import_module(f"services.{name}.persistence").metadata for name in STORES
    }
    found["workflows"] = importlib.import_module("workflows.persistence").metadata
    return found


def stored_fields(column: Column[Any]) -> list[tuple[str, FieldInfo]]:
    """The contract fields ``column`` stores: the one its info names, or those of its name."""
    if "stores" in column.info:
        declared = column.info["stores"]
        if declared is None:
            return []
        model, name = declared
        return [(f"{model.__name__}.{name}", model.model_fields[name])]
    return [
        (f"{model.__name__}.{name}", info)
        for model in contract_models()
        for name, info in model.model_fields.items()
        if name == column.name
    ]


def test_every_column_is_as_long_as_the_contract_field_it_stores() -> None:
    too_short = []
    for service, metadata in service_metadata().items():
        for table in metadata.sorted_tables:
            for column in table.columns:
                for field, info in stored_fields(column):
                    problem = _fits(column, info)
                    if problem:
                        too_short.append(
                            f"{service}: {table.name}.{column.name} ({problem} {field})"
                        )
    assert too_short == []


def _fits(column: Column[Any], info: FieldInfo) -> str | None:
    kind = column.type
    if isinstance(kind, String) and not isinstance(kind, Text) and kind.length is not None:
        bound = text_bound(info)
        if bound is None or bound > kind.length:
            return f"{kind.length} characters for {bound or 'unbounded'} of"
    if isinstance(kind, Integer) and type(kind) is Integer:
        most = [item.le for item in _metadata(info, annotated_types.Le)]
        if not most or min(most) > MAX_COUNT:
            return f"a 32-bit integer for {most or 'unbounded'} of"
    return None


def test_a_column_shorter_than_its_field_is_found() -> None:
    """The check itself: review's old 120-character city column against a 200 name."""
    from shared.contracts.workflows import RequestReviews

    old = Column("member_city", String(120))
    [(field, info)] = [
        (field, info) for field, info in stored_fields(old) if field.startswith("RequestReviews")
    ]
    assert field == "RequestReviews.member_city"
    assert _fits(old, info) == "120 characters for 200 of"
    assert (
        _fits(Column("member_city", String(200)), RequestReviews.model_fields["member_city"])
        is None
    )
