"""JSON-lines logging with the application and correlation ids of the work in hand.

configure_logging("intake", settings.log_level, settings.log_format)
with log_context(application_id=app_id, correlation_id=event.correlation_id):
    logger.info("application submitted", extra={"program": program_id})
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any, Final, TextIO
from uuid import UUID

application_id_var: ContextVar[str | None] = ContextVar("application_id", default=None)
correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)

CONTEXT_FIELDS: Final = ("application_id", "correlation_id")
FORMATS: Final = ("json", "text")

# Everything a LogRecord carries by itself; whatever else is on a record came from ``extra=``.
_RECORD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName", "color_message"}  # color_message: uvicorn's duplicate


@contextmanager
def log_context(
    application_id: str | UUID | None = None, correlation_id: str | UUID | None = None
) -> Iterator[None]:
    """Tag every record logged inside the block; ids left as None keep the outer value."""
    tokens = []
    if application_id is not None:
        tokens.append((application_id_var, application_id_var.set(str(application_id))))
    if correlation_id is not None:
        tokens.append((correlation_id_var, correlation_id_var.set(str(correlation_id))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def _context_value(record: logging.LogRecord, name: str, var: ContextVar[str | None]) -> Any:
    # An explicit extra= is more specific than the ambient context.
    explicit = record.__dict__.get(name)
    return explicit if explicit is not None else var.get()


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _RECORD_ATTRIBUTES and key not in CONTEXT_FIELDS and not key.startswith("_")
    }


def _json_default(value: object) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID | Decimal | PurePath):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_or_repr(value: object) -> object:
    try:
        json.dumps(value, default=_json_default)
    except (TypeError, ValueError, RecursionError):
        return repr(value)
    return value


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
            "application_id": _context_value(record, "application_id", application_id_var),
            "correlation_id": _context_value(record, "correlation_id", correlation_id_var),
        }
        # Cached on the record like logging.Formatter does, for other handlers' sake.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        for key, value in _extra_fields(record).items():
            payload.setdefault(key, value)  # the fields above win over a clashing extra
        try:
            return json.dumps(payload, default=_json_default, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            # Only extras can fail; repr just those rather than lose the record.
            safe = {key: _json_or_repr(value) for key, value in payload.items()}
            return json.dumps(safe, default=_json_default, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """A readable line: time, level, service, logger, message, then ids and extras."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), f"{record.levelname:<8}"]
        if self.service:
            parts.append(self.service)
        parts.append(f"{record.name}: {record.getMessage()}")
        fields = {
            "application_id": _context_value(record, "application_id", application_id_var),
            "correlation_id": _context_value(record, "correlation_id", correlation_id_var),
            **_extra_fields(record),
        }
        parts.extend(_key_value(key, value) for key, value in fields.items() if value is not None)
        line = " ".join(parts)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


def _key_value(key: str, value: object) -> str:
    if isinstance(value, str) and value and not any(char.isspace() for char in value):
        return f"{key}={value}"
    return f"{key}={value!r}"


class _ConfiguredHandler(logging.StreamHandler[TextIO]):
    """Marks the handler configure_logging installed, so a second call replaces it."""


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Send every logger's records to stderr as JSON lines (or text); safe to call again."""
    levels = logging.getLevelNamesMapping()
    level_number = levels.get(level.upper())
    if level_number is None:
        raise ValueError(f"unknown log level {level!r}; expected one of {sorted(levels)}")
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonLinesFormatter(service)
    elif fmt == "text":
        formatter = TextFormatter(service)
    else:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {FORMATS}")

    root = logging.getLogger()
    # Leave other handlers alone (pytest's capture, for one); replace only our own.
    for handler in [h for h in root.handlers if isinstance(h, _ConfiguredHandler)]:
        root.removeHandler(handler)
    handler = _ConfiguredHandler(sys.stderr)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level_number)

    # aiokafka narrates every connection and rebalance at INFO; its warnings still matter.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, level_number))
    # FastStream's per-message "Received"/"Processed" lines are the consumer's audit trail.
    logging.getLogger("faststream").setLevel(level_number)
