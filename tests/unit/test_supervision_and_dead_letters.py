"""The rules behind ``grantflow up``'s restarts and ``grantflow dlq``'s display."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest

from grantflow.deadletters import DeadLetterError, LetterId, decoded_body, parse_moment
from grantflow.stack.processes import Backoff, Child


def test_the_pause_before_a_restart_doubles_from_half_a_second_up_to_thirty() -> None:
    child = Child("review", ["serve"], {}, infrastructure=False)
    pauses = []
    for _ in range(9):
        child.started_at = time.monotonic()  # each run fails at once
        pauses.append(child.plan_restart(Backoff()))
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert child.restarts == 9


def test_a_process_that_ran_for_a_minute_is_restarted_after_the_shortest_pause() -> None:
    child = Child("tansu", ["broker"], {}, infrastructure=True)
    for _ in range(4):
        child.started_at = time.monotonic()
        child.plan_restart(Backoff())
    child.started_at = time.monotonic() - 61
    assert child.plan_restart(Backoff()) == 0.5
    assert child.restarts == 5


def test_a_message_is_shown_as_json_text_or_base64() -> None:
    envelope = {"event_id": "e-1", "payload": {"reason": "Städtepartnerschaft"}}
    kind, shown = decoded_body(json.dumps(envelope).encode())
    assert kind == "JSON" and json.loads(shown) == envelope and "\n  " in shown

    kind, shown = decoded_body(b"{not json, but mostly text \xff}")
    assert (kind, shown) == ("text", "{not json, but mostly text \ufffd}")

    binary = bytes(range(0, 256, 7))
    assert decoded_body(binary) == ("base64", base64.b64encode(binary).decode())


def test_a_dead_letter_id_names_its_service_and_number() -> None:
    assert LetterId.parse("review:12") == LetterId("review", 12)
    assert str(LetterId("workflows", 3)) == "workflows:3"
    for wrong in ("review", "review:", "review:x", "billing:1", ":3"):
        with pytest.raises(DeadLetterError):
            LetterId.parse(wrong)


def test_since_is_utc_unless_it_names_an_offset() -> None:
    assert parse_moment("2026-11-30T10:00") == datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert parse_moment("2026-11-30") == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_moment("2026-11-30T11:00+01:00") == datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert parse_moment("2026-11-30T10:00:00Z") == datetime(2026, 11, 30, 10, tzinfo=UTC)
