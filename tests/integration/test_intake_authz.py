"""Authorization of every intake route, driven by the OpenAPI document.

A route added later is found here by itself: if its path has an id parameter this test
does not know, the test fails until someone says whose object that id names.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from shared.auth import Role, mint_token
from tests.support.intake import RunningIntake, running_intake
from tests.support.processes import Tansu

# Path parameters naming an object that belongs to one member city.
OWNED = {"application_id", "member_id"}
# Reference data that every caller may read (programs, currencies).
SHARED = {"code", "from_currency", "to_currency"}
# The signed one-time link is itself the credential (the partner has no account).
CAPABILITY = {"token"}
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
async def svc(
    tansu: Tansu, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningIntake]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('authz-db') / 'intake.db'}"
    async with running_intake(url, tansu.bootstrap, tmp_path_factory.mktemp("authz")) as running:
        yield running


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def path_parameters(operation: dict[str, Any]) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return resolve(document, option)
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return resolve(document, document["components"]["schemas"][name])
    return schema


def example_body(
    document: dict[str, Any], method: str, path: str, operation: dict[str, Any]
) -> Any:
    """The request body's example from the OpenAPI document; every body model must have one."""
    body = operation.get("requestBody")
    if body is None:
        return None
    schema = resolve(document, body["content"]["application/json"]["schema"])
    examples = schema.get("examples")
    assert examples, f"{method} {path}: give the body model an example (json_schema_extra)"
    return examples[0]


def fill(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no value for a parameter of {path}"
    return path


async def call(
    client: httpx.AsyncClient, method: str, url: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    content = None if body is None else json.dumps(body)
    return await client.request(
        method, url, content=content, headers={**headers, "content-type": "application/json"}
    )


def test_every_path_parameter_is_classified(svc: RunningIntake) -> None:
    for method, path, operation in operations(svc.app.openapi()):
        unknown = path_parameters(operation) - OWNED - SHARED - CAPABILITY
        assert not unknown, (
            f"{method} {path} has parameters {unknown}: add them to OWNED (and make sure "
            "another member's object is a 404), SHARED or CAPABILITY"
        )


async def state_of(svc: RunningIntake, application_id: str, member_id: str) -> Any:
    application = await svc.client.get(f"/v1/applications/{application_id}", headers=svc.officer())
    member = await svc.client.get(f"/v1/members/{member_id}", headers=svc.officer())
    # What the members' calls published: the cycle announcements come from intake's own
    # job, which may run at any moment of the test.
    published = [
        envelope
        for envelope in await svc.outbox()
        if envelope["event_type"] != "ProgramCycleOpened"
    ]
    return application.json(), member.json(), len(published)


async def test_every_route_with_an_id_answers_404_for_another_members_object(
    svc: RunningIntake,
) -> None:
    owner, stranger = await svc.new_member(), await svc.new_member()
    document = svc.app.openapi()
    targets = {
        "submitted": {"application_id": await svc.submitted(owner), "member_id": owner},
        "draft": {"application_id": await svc.new_draft(owner), "member_id": owner},
    }
    owned = [
        (method, path, operation)
        for method, path, operation in operations(document)
        if path_parameters(operation) & OWNED
    ]
    assert len(owned) >= 9, "the application and member routes should all be found"
    before = {name: await state_of(svc, t["application_id"], owner) for name, t in targets.items()}

    answers: dict[tuple[str, str, str], int] = {}
    for name, values in targets.items():
        for method, path, operation in owned:
            url = fill(path, values)
            body = example_body(document, method, path, operation)
            for who, headers in (
                ("stranger", svc.applicant(stranger)),
                ("reviewer", reviewer(svc)),
            ):
                response = await call(svc.client, method, url, body, headers)
                answers[(name, f"{method} {path}", who)] = response.status_code
    after = {name: await state_of(svc, t["application_id"], owner) for name, t in targets.items()}
    assert after == before, "a refused call changed something"

    for name, values in targets.items():
        for method, path, operation in owned:
            url = fill(path, values)
            body = example_body(document, method, path, operation)
            owner_status = (
                await call(svc.client, method, url, body, svc.applicant(owner))
            ).status_code
            route = f"{method} {path}"
            stranger_status = answers[(name, route, "stranger")]
            assert answers[(name, route, "reviewer")] == 403, route
            if stranger_status == 403:
                # Closed to every applicant (an officers' route): nothing about the object leaks.
                assert owner_status == 403, (
                    f"{route}: 403 for a stranger but {owner_status} for the owner"
                )
            else:
                assert stranger_status == 404, (
                    f"{route} on a {name}: stranger got {stranger_status}"
                )
                assert owner_status != 404, f"{route} on a {name}: the owner got 404"


def reviewer(svc: RunningIntake) -> dict[str, str]:
    token = mint_token(svc.settings, role=Role.REVIEWER, reviewer_id="reviewer-1")
    return {"Authorization": f"Bearer {token}"}


def bad_tokens(svc: RunningIntake) -> dict[str, dict[str, str]]:
    now = datetime.now(UTC)
    claims = {
        "iss": svc.settings.jwt_issuer,
        "aud": svc.settings.jwt_audience,
        "sub": "demo-member-1",
        "iat": now,
        "exp": now + timedelta(hours=1),
        "role": "applicant",
        "member_id": "demo-member-1",
    }
    secret = svc.settings.jwt_secret.get_secret_value()
    tokens = {
        "expired": mint_token(
            svc.settings, role=Role.APPLICANT, member_id="demo-member-1", ttl=timedelta(hours=-1)
        ),
        "wrong audience": jwt.encode({**claims, "aud": "another-api"}, secret, algorithm="HS256"),
        "alg=none": jwt.encode(claims, None, algorithm="none"),
        "other secret": jwt.encode(claims, "not-our-secret-at-all-0123456789", algorithm="HS256"),
        "garbage": "not-a-token",
    }
    headers = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
    return {"missing": {}, **headers}


async def test_every_route_refuses_missing_expired_wrong_audience_and_unsigned_tokens(
    svc: RunningIntake,
) -> None:
    document = svc.app.openapi()
    values = {
        "application_id": "00000000-0000-0000-0000-000000000000",
        "member_id": "demo-member-1",
        "code": "AUPAP",
        "from_currency": "KES",
        "to_currency": "USD",
    }
    checked = 0
    for method, path, operation in operations(document):
        if not path.startswith("/v1/") or path_parameters(operation) & CAPABILITY:
            continue
        body = example_body(document, method, path, operation)
        for name, headers in bad_tokens(svc).items():
            response = await call(svc.client, method, fill(path, values), body, headers)
            assert response.status_code == 401, f"{method} {path} with a {name} token"
            assert response.headers["www-authenticate"] == "Bearer"
        checked += 1
    assert checked >= 15


async def test_the_partner_link_refuses_forged_and_altered_tokens(svc: RunningIntake) -> None:
    member = await svc.new_member()
    application_id = await svc.submitted(member)
    before = await state_of(svc, application_id, member)
    forged = f"{'a' * 32}.9999999999.c2lnbmF0dXJl"
    for token in (forged, "x", "a.b.c"):
        page = await svc.client.get(f"/v1/partner-confirmations/{token}")
        assert page.status_code == 404
        answer = await svc.client.post(
            f"/v1/partner-confirmations/{token}", json={"answer": "confirm"}
        )
        assert answer.status_code == 404
    assert await state_of(svc, application_id, member) == before
