"""Schemathesis (its own engine: every phase, every check, a fixed seed) against every
service's app in process, as each role that can reach its operations.

The apps answer without Kafka (no lifespan: events stay in the outbox) on SQLite; the
workflows app answers its lifecycle routes from a real Temporal dev server (the one the
end-to-end tests start), because a stub would answer what we told it to.

Schemathesis must find nothing: a schema-valid request is answered with a status its
operation declares, a schema-violating one is refused, every answer matches its schema.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.edges.apps import SERVICES, InProcess, build
from tests.edges.fuzzing import fuzz
from tests.support.processes import TemporalDevServer

# Examples per operation and phase: enough to try every field's bounds and types (the
# coverage phase tries each one regardless), little enough for two cores.
MAX_EXAMPLES = 5

# Who can reach each service's operations. Any other role is refused every call but the
# unauthenticated ones before its input is read (tests/edges/test_attacks.py and each
# service's API tests check those refusals); fuzzing as that role found nothing more.
REACHING: dict[str, tuple[str, ...]] = {
    "intake": ("applicant", "officer"),
    "review": ("reviewer", "officer"),
    "disbursement": ("officer",),
    "reporting": ("applicant", "officer"),
    "workflows": ("officer",),
}
# And the operations refused (403) to a role that reaches the service, before its input is
# read: the other role fuzzes them, and the services' API tests check the refusals. (The
# coverage phase tries every bound of every field, most of the run; for a refused role, in
# vain.)
REFUSED: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("intake", "applicant"): [("POST|PATCH|PUT", "^/v1/(members|exchange-rates)")],
    ("intake", "officer"): [("POST|PATCH", "^/v1/applications")],
    ("review", "reviewer"): [(".*", "^/v1/(officer|reviewers)")],
    ("review", "officer"): [(".*", "^/v1/tasks")],
    ("reporting", "applicant"): [(".*", "^/v1/analytics")],
    ("reporting", "officer"): [("PUT|POST", "^/v1/reports/")],
}


@pytest.fixture(scope="module")
async def apps(
    tmp_path_factory: pytest.TempPathFactory, temporal_dev_server: TemporalDevServer
) -> dict[str, InProcess]:
    state: Path = tmp_path_factory.mktemp("fuzz")
    return {
        service: await asyncio.to_thread(
            build, service, state, temporal_address=temporal_dev_server.address
        )
        for service in SERVICES
    }


@pytest.mark.parametrize(
    ("service", "role"), [(service, role) for service in SERVICES for role in REACHING[service]]
)
async def test_schemathesis_finds_nothing(
    service: str, role: str, apps: dict[str, InProcess]
) -> None:
    app = apps[service]
    skip = REFUSED.get((service, role), [])
    findings, calls = await asyncio.to_thread(
        lambda: fuzz(app, app.headers(role), max_examples=MAX_EXAMPLES, skip=skip)
    )
    assert calls > 0
    assert findings == [], "\n".join(str(finding) for finding in findings)
