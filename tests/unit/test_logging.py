"""JSON-lines logging and the application/correlation context."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from shared.logging import (
    JsonLinesFormatter,
    TextFormatter,
    application_id_var,
    configure_logging,
    correlation_id_var,
    log_context,
)

APPLICATION_ID = UUID("7b0c2b1e-4f7e-4d65-9a43-3f1f6c1c2a10")


class _Unserialisable:
    def __repr__(self) -> str:
        return "<unserialisable>"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter("intake"))
    logger = logging.getLogger("tests.unit.test_logging")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_record_inside_log_context_carries_both_ids(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured

    with log_context(application_id=APPLICATION_ID, correlation_id="corr-1"):
        logger.info("application %s submitted", "A-1")
    logger.info("outside")

    inside, outside = _lines(stream)
    assert inside["application_id"] == str(APPLICATION_ID)
    assert inside["correlation_id"] == "corr-1"
    assert inside["message"] == "application A-1 submitted"
    assert inside["level"] == "INFO"
    assert inside["logger"] == "tests.unit.test_logging"
    assert inside["service"] == "intake"
    assert datetime.fromisoformat(inside["ts"]).tzinfo is not None
    assert inside["ts"].endswith("Z")
    assert outside["application_id"] is None
    assert outside["correlation_id"] is None


def test_nested_context_keeps_outer_ids_and_restores_them() -> None:
    with log_context(application_id="app-1", correlation_id="corr-1"):
        with log_context(correlation_id="corr-2"):
            assert application_id_var.get() == "app-1"
            assert correlation_id_var.get() == "corr-2"
        assert correlation_id_var.get() == "corr-1"
    assert application_id_var.get() is None
    assert correlation_id_var.get() is None


def test_context_is_reset_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), log_context(application_id="app-1"):
        raise RuntimeError("boom")
    assert application_id_var.get() is None


def test_ids_passed_as_extra_win_over_the_context(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured

    with log_context(application_id="ambient", correlation_id="ambient-corr"):
        logger.info("explicit", extra={"application_id": "explicit-app"})

    (line,) = _lines(stream)
    assert line["application_id"] == "explicit-app"
    assert line["correlation_id"] == "ambient-corr"


def test_extra_fields_appear_and_unserialisable_ones_fall_back_to_repr(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    logger.warning(
        "disbursement delayed",
        extra={
            "program": "exchange-2025",
            "amount_cents": 125_000,
            "tags": ["travel", "stipend"],
            "due": at,
            "member": UUID(int=1),
            "opaque": _Unserialisable(),
            "service": "not-the-service",
        },
    )

    (line,) = _lines(stream)
    assert line["program"] == "exchange-2025"
    assert line["amount_cents"] == 125_000
    assert line["tags"] == ["travel", "stipend"]
    assert line["due"] == at.isoformat()
    assert line["member"] == str(UUID(int=1))
    assert line["opaque"] == "<unserialisable>"
    assert line["service"] == "intake", "a clashing extra must not replace the service"


def test_exception_text_appears(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured

    try:
        raise ValueError("ledger out of balance")
    except ValueError:
        logger.exception("reconciliation failed")

    (line,) = _lines(stream)
    assert line["level"] == "ERROR"
    assert "Traceback" in line["exception"]
    assert "ValueError: ledger out of balance" in line["exception"]


def test_every_line_is_one_json_object(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured

    logger.info("multi\nline\nmessage")
    logger.debug("unicode: Zürich → København")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logger.error("with traceback", exc_info=True)

    text = stream.getvalue()
    assert len(text.splitlines()) == 3
    messages = [line["message"] for line in _lines(stream)]
    assert messages == ["multi\nline\nmessage", "unicode: Zürich → København", "with traceback"]


def test_text_format_is_one_readable_line() -> None:
    record = logging.LogRecord("shared.outbox", logging.INFO, __file__, 1, "relayed %d", (3,), None)
    record.topic = "applications"

    with log_context(application_id="app-1"):
        line = TextFormatter("intake").format(record)

    assert "\n" not in line
    assert "INFO" in line
    assert "intake shared.outbox: relayed 3" in line
    assert "application_id=app-1" in line
    assert "topic=applications" in line
    assert "correlation_id" not in line


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in ("aiokafka", "faststream")}
    yield
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, level in noisy.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_configure_logging_is_idempotent_and_writes_json_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("review", "debug")
    configure_logging("review", "INFO")

    ours = [h for h in logging.getLogger().handlers if type(h).__name__ == "_ConfiguredHandler"]
    assert len(ours) == 1
    assert logging.getLogger().level == logging.INFO
    assert logging.getLogger("aiokafka").level == logging.WARNING
    assert logging.getLogger("faststream").level == logging.INFO

    with log_context(correlation_id="corr-9"):
        logging.getLogger("services.review").info("review assigned", extra={"reviewer": "r-1"})

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (line,) = [line for line in lines if line["message"] == "review assigned"]
    assert line["service"] == "review"
    assert line["correlation_id"] == "corr-9"
    assert line["reviewer"] == "r-1"


@pytest.mark.usefixtures("root_logging")
def test_configure_logging_text_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("reporting", "INFO", "text")

    logging.getLogger("services.reporting").warning("report late")

    err = capsys.readouterr().err
    assert "WARNING  reporting services.reporting: report late" in err


@pytest.mark.usefixtures("root_logging")
def test_configure_logging_refuses_unknown_level_and_format() -> None:
    with pytest.raises(ValueError, match="level"):
        configure_logging("intake", "LOUD")
    with pytest.raises(ValueError, match="format"):
        configure_logging("intake", "INFO", "xml")
