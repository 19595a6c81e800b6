"""Schemathesis's own engine (the one its command line runs) against an app in process.

All phases (examples, coverage, fuzzing, stateful) and all checks, with a fixed seed;
``findings`` are what schemathesis would report as failures, one line each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, from_schema
from schemathesis.engine import events as engine_events

SEED = 20270510


@dataclass(frozen=True)
class Finding:
    operation: str
    check: str
    message: str
    reproduce: str
    answer: str = ""

    def __str__(self) -> str:
        said = f"\n    answered: {self.answer}" if self.answer else ""
        return f"{self.operation}: {self.check}: {self.message}\n    {self.reproduce}{said}"


def fuzz(
    app: Any,
    headers: dict[str, str],
    *,
    max_examples: int,
    skip: Sequence[tuple[str, str]] = (),
) -> tuple[list[Finding], int]:
    """What schemathesis finds in ``app`` called with ``headers``, and how many calls it made;
    ``skip`` names operations left out, as (method regex, path regex)."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": headers,
            "suppress-health-check": ["all"],
            # No text field anywhere takes a NUL character (refused with 422 before any
            # route, see shared.http.JsonGuard); tests/edges/test_attacks.py sends them.
            "generation": {
                "max-examples": max_examples,
                "deterministic": True,
                "allow-x00": False,
            },
            "checks": {"enabled": True},
            "phases": {"enabled": True},
            "continue-on-failure": True,
        }
    )
    # Readiness answers 503 while the broker is away, which it is here: that is its job.
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config).exclude(
        path="/readyz"
    )
    for methods, paths in skip:
        schema = schema.exclude(method_regex=methods, path_regex=paths)
    findings: list[Finding] = []
    calls = 0
    for event in from_schema(schema).execute():
        if isinstance(event, engine_events.ScenarioFinished):
            recorder = event.recorder
            calls += len(recorder.interactions)
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.status is not Status.FAILURE or check.failure_info is None:
                        continue
                    interaction = recorder.interactions.get(case_id)
                    response = interaction.response if interaction is not None else None
                    answer = (
                        f"{response.status_code} {(response.content or b'')[:400]!r}"
                        if response is not None
                        else ""
                    )
                    findings.append(
                        Finding(
                            recorder.label,
                            check.name,
                            check.failure_info.failure.title,
                            check.failure_info.code_sample[:600],
                            answer,
                        )
                    )
        elif isinstance(event, engine_events.NonFatalError):
            findings.append(Finding(event.label, "error", repr(event.value)[:300], ""))
        elif isinstance(event, engine_events.FatalError):
            raise event.exception
    unique = {(f.operation, f.check, f.message): f for f in findings}
    return list(unique.values()), calls
