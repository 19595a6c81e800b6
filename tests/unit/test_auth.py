"""Bearer-token authentication and role checks, through a small FastAPI app."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from shared.auth import (
    OFFICERS,
    Auth,
    InvalidTokenError,
    Principal,
    Role,
    TokenVerifier,
    can_see_member,
    current_principal,
    mint_token,
    require,
)
from shared.settings import CommonSettings

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
SETTINGS = CommonSettings(
    environment="test",
    jwt_secret=SecretStr(SECRET),
    jwt_issuer="grantflow-test",
    jwt_audience="grantflow-test-api",
)


# Module globals on purpose: FastAPI resolves these string annotations in module scope.
auth = Auth(SETTINGS)
app = FastAPI()


@app.get("/me")
async def me(principal: Annotated[Principal, Depends(auth.current_principal)]) -> Principal:
    return principal


@app.get("/officers")
async def officers(principal: Annotated[Principal, Depends(auth.require(*OFFICERS))]) -> str:
    return principal.subject


@app.get("/applicants")
async def applicants(
    principal: Annotated[Principal, Depends(auth.require(Role.APPLICANT))],
) -> Principal:
    return principal


@app.get("/reviewers")
async def reviewers(
    principal: Annotated[Principal, Depends(auth.require(Role.REVIEWER))],
) -> Principal:
    return principal


# The pattern for routers defined before the settings exist.
router = APIRouter()


@router.get("/router/me")
async def router_me(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    return principal


@router.get("/router/officers")
async def router_officers(principal: Annotated[Principal, Depends(require(*OFFICERS))]) -> str:
    return principal.subject


app.include_router(router)
auth.install(app)

client = TestClient(app)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": SETTINGS.jwt_issuer,
        "aud": SETTINGS.jwt_audience,
        "sub": "someone",
        "iat": now,
        "exp": now + timedelta(hours=1),
        "role": "applicant",
        "member_id": "member-1",
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def _signed(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _b64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _assert_unauthorized(path: str, token: str | None, detail: str) -> None:
    response = client.get(path, headers=_bearer(token) if token is not None else {})
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"] == detail


def test_applicant_token_is_accepted_and_bound_to_its_member() -> None:
    token = mint_token(SETTINGS, role=Role.APPLICANT, member_id="member-7")

    response = client.get("/applicants", headers=_bearer(token))

    assert response.status_code == 200
    principal = Principal.model_validate(response.json())
    assert principal.role is Role.APPLICANT
    assert principal.member_id == "member-7"
    assert principal.subject == "member-7"


def test_minted_token_carries_the_documented_claims() -> None:
    token = mint_token(
        SETTINGS,
        role="reviewer",
        subject="r@example.org",
        reviewer_id="rev-1",
        ttl=timedelta(minutes=5),
    )
    claims = jwt.decode(
        token,
        SECRET,
        algorithms=["HS256"],
        audience=SETTINGS.jwt_audience,
        issuer=SETTINGS.jwt_issuer,
    )
    assert claims["sub"] == "r@example.org"
    assert claims["role"] == "reviewer"
    assert claims["reviewer_id"] == "rev-1"
    assert "member_id" not in claims
    assert claims["exp"] - claims["iat"] == 300
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_missing_header_is_401() -> None:
    _assert_unauthorized("/me", None, "bearer token missing")
    _assert_unauthorized("/officers", None, "bearer token missing")


def test_non_bearer_scheme_is_401() -> None:
    response = client.get("/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_expired_token_is_401() -> None:
    token = mint_token(
        SETTINGS, role=Role.APPLICANT, member_id="member-1", ttl=-timedelta(minutes=5)
    )
    _assert_unauthorized("/applicants", token, "token expired")


def test_a_token_valid_for_ten_years_is_401() -> None:
    issued = int(time.time())
    token = _signed(_claims(iat=issued, exp=issued + 10 * 365 * 24 * 3600))
    _assert_unauthorized(
        "/me", token, "token is valid for longer than the 24 hours allowed; get a new one"
    )


def test_a_token_longer_than_the_maximum_cannot_be_minted() -> None:
    with pytest.raises(ValueError, match="at most"):
        mint_token(SETTINGS, role=Role.ADMIN, ttl=timedelta(days=30))


def test_wrong_audience_is_401() -> None:
    other = SETTINGS.model_copy(update={"jwt_audience": "someone-else"})
    token = mint_token(other, role=Role.ADMIN)
    _assert_unauthorized("/officers", token, "token audience is wrong")


def test_wrong_issuer_is_401() -> None:
    other = SETTINGS.model_copy(update={"jwt_issuer": "evil-issuer"})
    token = mint_token(other, role=Role.ADMIN)
    _assert_unauthorized("/officers", token, "token issuer is wrong")


def test_token_signed_with_another_secret_is_401() -> None:
    other = SETTINGS.model_copy(
        update={"jwt_secret": SecretStr("another-secret-that-is-also-long-enough")}
    )
    token = mint_token(other, role=Role.ADMIN)
    _assert_unauthorized("/officers", token, "token signature is invalid")


def test_alg_none_token_is_401() -> None:
    header = _b64url({"alg": "none", "typ": "JWT"})
    payload = _b64url(
        {
            "iss": SETTINGS.jwt_issuer,
            "aud": SETTINGS.jwt_audience,
            "sub": "mallory",
            "iat": int(datetime.now(UTC).timestamp()),
            "exp": int((datetime.now(UTC) + timedelta(hours=1)).timestamp()),
            "role": "admin",
        }
    )
    token = f"{header}.{payload}."
    _assert_unauthorized("/officers", token, "token algorithm is not allowed")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_other_hmac_algorithm_is_401() -> None:
    token = _signed(_claims(role="admin", member_id=None), algorithm="HS512")
    _assert_unauthorized("/officers", token, "token algorithm is not allowed")


def test_malformed_token_is_401() -> None:
    _assert_unauthorized("/me", "not-a-jwt", "token is malformed")


def test_applicant_on_officer_route_is_403() -> None:
    token = mint_token(SETTINGS, role=Role.APPLICANT, member_id="member-1")

    response = client.get("/officers", headers=_bearer(token))

    assert response.status_code == 403
    assert response.json()["detail"].startswith("role applicant may not")


@pytest.mark.parametrize("role", OFFICERS)
def test_officers_reach_officer_routes(role: Role) -> None:
    token = mint_token(SETTINGS, role=role, subject=f"{role}@example.org")

    response = client.get("/officers", headers=_bearer(token))

    assert response.status_code == 200
    assert response.json() == f"{role}@example.org"


def test_admin_is_not_implicitly_an_applicant() -> None:
    token = mint_token(SETTINGS, role=Role.ADMIN)
    assert client.get("/applicants", headers=_bearer(token)).status_code == 403


def test_applicant_without_member_cannot_be_minted() -> None:
    with pytest.raises(ValueError, match="member_id"):
        mint_token(SETTINGS, role=Role.APPLICANT)


def test_reviewer_without_reviewer_id_cannot_be_minted() -> None:
    with pytest.raises(ValueError, match="reviewer_id"):
        mint_token(SETTINGS, role=Role.REVIEWER, member_id="member-1")


def test_unknown_role_cannot_be_minted() -> None:
    with pytest.raises(ValueError):
        mint_token(SETTINGS, role="superuser")


def test_hand_crafted_applicant_without_member_is_401() -> None:
    token = _signed(_claims(member_id=None))
    _assert_unauthorized(
        "/applicants", token, "token is not bound to a member or reviewer as its role requires"
    )


def test_hand_crafted_reviewer_without_reviewer_id_is_401() -> None:
    token = _signed(_claims(role="reviewer", member_id=None))
    _assert_unauthorized(
        "/reviewers", token, "token is not bound to a member or reviewer as its role requires"
    )


def test_unknown_role_is_401() -> None:
    token = _signed(_claims(role="superuser"))
    _assert_unauthorized("/me", token, "token role is unknown")


def test_missing_role_claim_is_401() -> None:
    claims = _claims()
    del claims["role"]
    _assert_unauthorized("/me", _signed(claims), "token lacks the role claim")


def test_missing_expiry_is_401() -> None:
    claims = _claims()
    del claims["exp"]
    _assert_unauthorized("/me", _signed(claims), "token lacks the exp claim")


def test_non_string_binding_is_401() -> None:
    token = _signed(_claims(member_id=42))
    _assert_unauthorized("/me", token, "token member_id claim is invalid")


def test_reviewer_token_is_bound_to_its_reviewer() -> None:
    token = mint_token(SETTINGS, role=Role.REVIEWER, reviewer_id="rev-9")

    response = client.get("/reviewers", headers=_bearer(token))

    assert response.status_code == 200
    principal = Principal.model_validate(response.json())
    assert principal.reviewer_id == "rev-9"
    assert principal.member_id is None
    assert client.get("/applicants", headers=_bearer(token)).status_code == 403


def test_require_needs_a_role() -> None:
    with pytest.raises(ValueError):
        Auth(SETTINGS).require()
    with pytest.raises(ValueError):
        require()


def test_module_level_dependencies_use_the_installed_auth() -> None:
    applicant = mint_token(SETTINGS, role=Role.APPLICANT, member_id="member-3")
    officer = mint_token(SETTINGS, role=Role.PROGRAM_OFFICER, subject="po-1")

    assert client.get("/router/me", headers=_bearer(applicant)).json()["member_id"] == "member-3"
    assert client.get("/router/officers", headers=_bearer(officer)).json() == "po-1"
    assert client.get("/router/officers", headers=_bearer(applicant)).status_code == 403
    _assert_unauthorized("/router/officers", None, "bearer token missing")
    expired = mint_token(SETTINGS, role=Role.ADMIN, ttl=-timedelta(minutes=5))
    _assert_unauthorized("/router/me", expired, "token expired")


def test_openapi_documents_the_bearer_scheme() -> None:
    schema = app.openapi()

    schemes = schema["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= next(iter(schemes.values())).items()
    assert schema["paths"]["/officers"]["get"]["security"]


def test_can_see_member() -> None:
    officer = Principal(subject="po", role=Role.PROGRAM_OFFICER)
    admin = Principal(subject="root", role=Role.ADMIN)
    applicant = Principal(subject="a", role=Role.APPLICANT, member_id="member-1")
    reviewer = Principal(subject="r", role=Role.REVIEWER, reviewer_id="rev-1")

    assert can_see_member(officer, "member-2")
    assert can_see_member(admin, "member-2")
    assert can_see_member(applicant, "member-1")
    assert not can_see_member(applicant, "member-2")
    assert not can_see_member(reviewer, "member-1")


def test_principal_is_frozen() -> None:
    principal = Principal(subject="a", role=Role.APPLICANT, member_id="member-1")
    with pytest.raises(ValueError):
        principal.member_id = "member-2"  # type: ignore[misc]


_verifier = TokenVerifier(SETTINGS)
_valid_token = mint_token(SETTINGS, role=Role.APPLICANT, member_id="member-1")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_is_only_ever_an_invalid_token(token: str) -> None:
    with pytest.raises(InvalidTokenError):
        _verifier.verify(token)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(_valid_token) - 1), st.characters())
def test_tampered_tokens_are_refused_cleanly(position: int, replacement: str) -> None:
    tampered = _valid_token[:position] + replacement + _valid_token[position + 1 :]
    try:
        principal = _verifier.verify(tampered)
    except InvalidTokenError:
        return
    # Some base64 characters differ only in padding bits and decode to the same bytes.
    assert principal == _verifier.verify(_valid_token)
