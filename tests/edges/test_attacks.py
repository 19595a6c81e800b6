"""What an outside tester tried against the services, each now a clear 4xx naming the field.

Every service's app in process on SQLite (tests/edges/apps.py): no 500, no partial write.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.edges.apps import MEMBER_ID, InProcess, build
from tests.support.disbursement import sign


@pytest.fixture(scope="module")
async def apps(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, InProcess]]:
    state: Path = tmp_path_factory.mktemp("attacks")
    built = {
        name: await asyncio.to_thread(build, name, state)
        for name in ("intake", "review", "disbursement", "reporting")
    }
    for app in built.values():
        for step in app.startup:
            await step(app.app)
    yield built
    for app in built.values():
        await app.app.state.runtime.engine.dispose()


@pytest.fixture(scope="module")
async def clients(apps: dict[str, InProcess]) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    opened = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app), base_url="http://t")
        for name, app in apps.items()
    }
    yield opened
    for client in opened.values():
        await client.aclose()


def field_of(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    return str(response.json()["detail"][0]["field"])


LIST_ROUTES = [
    ("intake", "/v1/members"),
    ("intake", "/v1/applications"),
    ("intake", "/v1/programs"),
    ("intake", "/v1/exchange-rates"),
    ("review", "/v1/officer/tasks"),
    ("review", "/v1/reviewers"),
    ("review", "/v1/officer/workload"),
    ("review", "/v1/officer/applications/app-1/requests"),
    ("disbursement", "/v1/budgets"),
    ("disbursement", "/v1/fx-rates"),
    ("reporting", "/v1/reports"),
]


@pytest.mark.parametrize(("service", "path"), LIST_ROUTES)
async def test_an_offset_of_ten_to_the_twentieth_is_refused_naming_it(
    service: str, path: str, apps: dict[str, InProcess], clients: dict[str, httpx.AsyncClient]
) -> None:
    officer = apps[service].headers("officer")
    response = await clients[service].get(f"{path}?offset={10**20}", headers=officer)
    assert field_of(response) == "offset"


async def test_a_program_budget_of_two_to_the_sixty_third_is_refused(
    apps: dict[str, InProcess], clients: dict[str, httpx.AsyncClient]
) -> None:
    response = await clients["disbursement"].put(
        "/v1/budgets/AUPAP/2027",
        json={"amount": {"amount_minor": 2**63, "currency": "USD"}, "reason": "officer test"},
        headers=apps["disbursement"].headers("officer"),
    )
    assert response.status_code == 422, response.text


async def test_a_budget_line_of_ten_to_the_thirtieth_is_refused_and_nothing_is_written(
    apps: dict[str, InProcess], clients: dict[str, httpx.AsyncClient]
) -> None:
    applicant = apps["intake"].headers("applicant")
    before = (await clients["intake"].get("/v1/applications", headers=applicant)).json()["total"]
    line = {
        "category": "travel",
        "description": "x",
        "amount": {"amount_minor": 10**30, "currency": "USD"},
    }
    response = await clients["intake"].post(
        "/v1/applications", json={"budget_lines": [line]}, headers=applicant
    )
    assert response.status_code == 422, response.text
    after = (await clients["intake"].get("/v1/applications", headers=applicant)).json()["total"]
    assert after == before


@pytest.mark.parametrize(
    ("service", "path"),
    [("intake", "/v1/exchange-rates/KES/USD"), ("disbursement", "/v1/fx-rates/USD/KES")],
)
@pytest.mark.parametrize("rate", ["1E+999999", "0", "-3", "0.0000000000000"])
async def test_an_exchange_rate_that_is_not_a_positive_decimal_is_refused(
    service: str,
    path: str,
    rate: str,
    apps: dict[str, InProcess],
    clients: dict[str, httpx.AsyncClient],
) -> None:
    response = await clients[service].put(
        path, json={"rate": rate}, headers=apps[service].headers("officer")
    )
    assert field_of(response) == "rate"


async def test_the_partner_link_refuses_deep_json_and_a_five_thousand_digit_number(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    deep = "[" * 5000 + "]" * 5000
    huge = json.dumps({"answer": "confirm"})[:-1] + ', "note": ' + "9" * 5000 + "}"
    for body in (deep, huge):
        response = await clients["intake"].post(
            "/v1/partner-confirmations/not-a-token",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert field_of(response) == "body"


@pytest.mark.parametrize(
    ("service", "path", "field"),
    [
        ("intake", f"/v1/members/{MEMBER_ID}%00", "path"),
        ("intake", "/v1/applications?status=draft%00", "status"),
        ("review", "/v1/officer/tasks?program_code=A%00", "program_code"),
        ("reporting", "/v1/reports?application_id=%00", "application_id"),
    ],
)
async def test_a_nul_character_in_the_path_or_query_is_refused_naming_it(
    service: str,
    path: str,
    field: str,
    apps: dict[str, InProcess],
    clients: dict[str, httpx.AsyncClient],
) -> None:
    response = await clients[service].get(path, headers=apps[service].headers("officer"))
    assert field_of(response) == field


async def test_a_signed_settlement_with_a_400_digit_timestamp_is_refused(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    body = json.dumps(
        {
            "outcome": "settled",
            "instruction_id": "nobody:1",
            "finance_reference": "F",
            "amount": {"amount_minor": 1, "currency": "USD"},
        }
    ).encode()
    headers = {**sign(body), "X-Grantflow-Timestamp": "9" * 400}
    response = await clients["disbursement"].post(
        "/v1/finance/settlements", content=body, headers=headers
    )
    assert response.status_code in (401, 422), response.text


@pytest.mark.parametrize("service", ["intake", "review", "disbursement", "reporting"])
async def test_metrics_need_an_officers_token(
    service: str, apps: dict[str, InProcess], clients: dict[str, httpx.AsyncClient]
) -> None:
    client = clients[service]
    assert (await client.get("/metrics")).status_code == 401
    assert (
        await client.get("/metrics", headers=apps[service].headers("applicant"))
    ).status_code == 403
    metrics = await client.get("/metrics", headers=apps[service].headers("officer"))
    assert metrics.status_code == 200
    assert "http_requests_total" in metrics.text


async def test_a_token_valid_for_ten_years_is_refused(
    apps: dict[str, InProcess], clients: dict[str, httpx.AsyncClient]
) -> None:
    from datetime import UTC, datetime, timedelta

    import jwt

    settings = apps["intake"].settings
    now = datetime.now(UTC)
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "po",
        "iat": now,
        "exp": now + timedelta(days=3650),
        "role": "program_officer",
    }
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
    response = await clients["intake"].get(
        "/v1/programs", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert "longer than" in response.json()["detail"]


async def test_a_method_a_path_does_not_answer_is_405_naming_every_method_it_does(
    apps: dict[str, InProcess], clients: dict[str, httpx.AsyncClient]
) -> None:
    response = await clients["intake"].delete(
        f"/v1/members/{MEMBER_ID}", headers=apps["intake"].headers("officer")
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PATCH"


@pytest.mark.parametrize("service", ["intake", "review", "disbursement", "reporting"])
async def test_every_route_declares_its_errors_with_the_error_body(
    service: str, clients: dict[str, httpx.AsyncClient]
) -> None:
    document = (await clients[service].get("/openapi.json")).json()
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if operation.get("security") and not {"401", "403", "503"} <= set(responses):
                missing.append(f"{method} {path}: 401/403/503")
            if "{" in path and "404" not in responses:
                missing.append(f"{method} {path}: 404")
            if "requestBody" in operation and not {"413", "422"} <= set(responses):
                missing.append(f"{method} {path}: 413/422")
            for status, response in responses.items():
                body = response.get("content", {}).get("application/json", {}).get("schema")
                if status.startswith("4") and body != {"$ref": "#/components/schemas/ErrorBody"}:
                    missing.append(f"{method} {path}: {status} without ErrorBody")
                if status == "503" and path != "/readyz" and body != _ERROR_BODY:
                    missing.append(f"{method} {path}: 503 without ErrorBody")
    assert missing == []


_ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
# What pydantic writes for a bound it could not turn into JSON Schema (a bound outside a
# validator that wraps the type): the schema then allows what the service refuses.
_NOT_JSON_SCHEMA = {"ge", "gt", "le", "lt", "min_length", "max_length"}


def _stray_keywords(node: object, where: str = "") -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _NOT_JSON_SCHEMA and not where.endswith("/properties"):
                found.append(f"{where}/{key}")
            found += _stray_keywords(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += _stray_keywords(item, f"{where}/{index}")
    return found


@pytest.mark.parametrize("service", ["intake", "review", "disbursement", "reporting"])
async def test_every_bound_is_written_in_json_schema_words(
    service: str, clients: dict[str, httpx.AsyncClient]
) -> None:
    document = (await clients[service].get("/openapi.json")).json()
    assert _stray_keywords(document) == []


async def test_readiness_declares_its_own_body_for_503(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    document = (await clients["intake"].get("/openapi.json")).json()
    declared = document["paths"]["/readyz"]["get"]["responses"]["503"]
    schema = declared["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Readiness"}
    assert set(document["components"]["schemas"]["Readiness"]["properties"]) == {
        "status",
        "service",
        "checks",
    }
