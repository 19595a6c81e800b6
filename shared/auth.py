"""Bearer-token authentication and role checks as FastAPI dependencies.

Tokens are HS256 JWTs signed with the shared ``jwt_secret``; when ``jwt_jwks_url`` is set,
they are RS256/ES256 tokens from an OIDC provider instead, and the secret is not accepted.

    router = APIRouter()

    @router.get("/applications/{id}")
    async def read(principal: Annotated[Principal, Depends(require(*OFFICERS))]) -> ...

    Auth(settings).install(app)  # once, where the app is built
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final

import jwt
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jwt.algorithms import has_crypto
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from shared.settings import CommonSettings

SECRET_ALGORITHMS: Final = ("HS256",)
JWKS_ALGORITHMS: Final = ("RS256", "ES256")
REQUIRED_CLAIMS: Final = ("exp", "iat", "iss", "aud", "sub", "role")


class Role(StrEnum):
    APPLICANT = "applicant"
    REVIEWER = "reviewer"
    PROGRAM_OFFICER = "program_officer"
    ADMIN = "admin"


OFFICERS: Final = (Role.PROGRAM_OFFICER, Role.ADMIN)


class Principal(BaseModel):
    """Who is calling: the token's subject, role, and the member or reviewer it is bound to."""

    model_config = ConfigDict(frozen=True)

    subject: str
    role: Role
    member_id: str | None = None
    reviewer_id: str | None = None

    @model_validator(mode="after")
    def _role_has_its_binding(self) -> Principal:
        # Object-level checks key on these ids; a token without one would see nothing or,
        # worse, be compared against None.
        if self.role is Role.APPLICANT and not self.member_id:
            raise ValueError("an applicant token needs a member_id")
        if self.role is Role.REVIEWER and not self.reviewer_id:
            raise ValueError("a reviewer token needs a reviewer_id")
        return self

    @property
    def is_officer(self) -> bool:
        return self.role in OFFICERS


class InvalidTokenError(Exception):
    """The bearer token cannot be trusted; ``str(error)`` is safe to show the caller."""


class SigningKeysUnavailableError(Exception):
    """The JWKS endpoint could not supply keys: our problem, not the caller's."""


def mint_token(
    settings: CommonSettings,
    *,
    role: Role | str,
    subject: str | None = None,
    member_id: str | None = None,
    reviewer_id: str | None = None,
    ttl: timedelta = timedelta(hours=12),
) -> str:
    """An HS256 token for ``role``; raises ValueError when the role's binding is missing
    or the lifetime is longer than the configured maximum.

    Only the shared-secret verifier accepts these; with ``jwt_jwks_url`` set, tokens come
    from the identity provider.
    """
    longest = timedelta(hours=settings.jwt_max_lifetime_hours)
    if ttl > longest:
        raise ValueError(
            f"a token may be valid for {settings.jwt_max_lifetime_hours:g} hours at most"
        )
    principal = Principal(
        subject=subject or member_id or reviewer_id or str(role),
        role=Role(role),
        member_id=member_id,
        reviewer_id=reviewer_id,
    )
    issued_at = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": principal.subject,
        "iat": issued_at,
        "exp": issued_at + ttl,
        "role": principal.role.value,
    }
    if principal.member_id is not None:
        claims["member_id"] = principal.member_id
    if principal.reviewer_id is not None:
        claims["reviewer_id"] = principal.reviewer_id
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


class TokenVerifier:
    """Checks signature, algorithm, issuer, audience and expiry, then builds the Principal."""

    def __init__(
        self, settings: CommonSettings, *, leeway: timedelta = timedelta(seconds=30)
    ) -> None:
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = leeway
        self._longest = timedelta(hours=settings.jwt_max_lifetime_hours)
        self._secret = settings.jwt_secret.get_secret_value()
        self._jwks: jwt.PyJWKClient | None = None
        if settings.jwt_jwks_url:
            if not has_crypto:
                # Fail at startup rather than refusing every request later.
                raise RuntimeError("jwt_jwks_url needs RS256/ES256 support: install pyjwt[crypto]")
            self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url)

    @property
    def fetches_keys(self) -> bool:
        """True when verifying may block on the JWKS endpoint."""
        return self._jwks is not None

    def verify(self, token: str) -> Principal:
        """The token's Principal; raises InvalidTokenError or SigningKeysUnavailableError."""
        key: jwt.PyJWK | str
        algorithms: tuple[str, ...]
        if self._jwks is None:
            key, algorithms = self._secret, SECRET_ALGORITHMS
        else:
            key, algorithms = self._signing_key(token), JWKS_ALGORITHMS
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(algorithms),
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as error:
            raise InvalidTokenError(_describe(error)) from error
        except UnicodeError as error:  # a token with characters no JWT can hold
            raise InvalidTokenError("token is malformed") from error
        lifetime = _lifetime(claims)
        if lifetime is None or lifetime > self._longest:
            hours = self._longest.total_seconds() / 3600
            raise InvalidTokenError(
                f"token is valid for longer than the {hours:g} hours allowed; get a new one"
            )
        try:
            return Principal(
                subject=claims["sub"],
                role=claims["role"],
                member_id=claims.get("member_id"),
                reviewer_id=claims.get("reviewer_id"),
            )
        except ValidationError as error:
            raise InvalidTokenError(_describe_claims(error)) from error

    def _signing_key(self, token: str) -> jwt.PyJWK:
        assert self._jwks is not None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as error:
            raise InvalidTokenError(_describe(error)) from error
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("token has no key id")
        # Fetching the set first separates an unreachable or unusable endpoint from a token
        # naming a key the endpoint does not have.
        try:
            self._jwks.get_signing_keys()
        except jwt.PyJWTError as error:
            raise SigningKeysUnavailableError(f"signing keys unavailable: {error}") from error
        try:
            return self._jwks.get_signing_key(kid)
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError) as error:
            raise SigningKeysUnavailableError(f"signing keys unavailable: {error}") from error
        except jwt.PyJWTError as error:
            raise InvalidTokenError("token signing key is unknown") from error


def _lifetime(claims: dict[str, Any]) -> timedelta | None:
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        return None
    return timedelta(seconds=expires - issued)


def _describe(error: jwt.PyJWTError) -> str:
    # Most specific first: several of these subclass jwt.DecodeError or jwt.InvalidTokenError.
    match error:
        case jwt.ExpiredSignatureError():
            return "token expired"
        case jwt.ImmatureSignatureError():
            return "token is not valid yet"
        case jwt.InvalidAudienceError():
            return "token audience is wrong"
        case jwt.InvalidIssuerError():
            return "token issuer is wrong"
        case jwt.InvalidAlgorithmError():
            return "token algorithm is not allowed"
        case jwt.InvalidSignatureError():
            return "token signature is invalid"
        case jwt.MissingRequiredClaimError():
            return f"token lacks the {error.claim} claim"
        case jwt.exceptions.InvalidSubjectError():
            return "token subject is invalid"
        case jwt.InvalidIssuedAtError():
            return "token issue time is invalid"
        case jwt.DecodeError():
            return "token is malformed"
        case _:
            return "token is invalid"


def _describe_claims(error: ValidationError) -> str:
    first = error.errors()[0]
    if first["type"] == "enum":
        return "token role is unknown"
    if first["type"] == "value_error":
        return "token is not bound to a member or reviewer as its role requires"
    field = ".".join(str(part) for part in first["loc"]) or "claims"
    return f"token {field} claim is invalid"


def can_see_member(principal: Principal, member_id: str) -> bool:
    """Officers see every member's data; an applicant only its own; reviewers go by assignment."""
    if principal.is_officer:
        return True
    return principal.role is Role.APPLICANT and principal.member_id == member_id


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


# Module level so FastAPI can resolve the string annotation below (dependencies' annotations
# are evaluated in their module's globals); the scheme is stateless, so one serves every app.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="JWT issued by grantflow or the configured identity provider",
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)]


class Auth:
    """The authentication dependencies of one app, built once from its settings.

    Use ``auth.current_principal`` / ``auth.require(...)`` where the instance is a module
    global; routers defined before the settings exist use the module-level
    ``current_principal`` / ``require(...)``, which find the instance ``install`` put on the app.
    """

    def __init__(self, settings: CommonSettings, *, verifier: TokenVerifier | None = None) -> None:
        self.verifier = verifier or TokenVerifier(settings)

    def install(self, app: FastAPI) -> Auth:
        """Make this the Auth the module-level dependencies use for ``app``."""
        app.state.auth = self
        return self

    async def current_principal(self, credentials: BearerCredentials) -> Principal:
        """Dependency: the verified caller of any role; 401 without a valid bearer token."""
        if credentials is None:
            raise _unauthorized("bearer token missing")
        try:
            if self.verifier.fetches_keys:
                # PyJWKClient fetches over blocking urllib.
                return await run_in_threadpool(self.verifier.verify, credentials.credentials)
            return self.verifier.verify(credentials.credentials)
        except InvalidTokenError as error:
            raise _unauthorized(str(error)) from error
        except SigningKeysUnavailableError as error:
            raise HTTPException(
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                detail="token signing keys are unavailable; try again later",
            ) from error

    def require(
        self, *roles: Role
    ) -> Callable[[HTTPAuthorizationCredentials | None], Awaitable[Principal]]:
        """A dependency returning the caller's Principal if its role is one of ``roles``."""
        check_role = _role_check(roles)

        # Takes the credentials rather than Depends(self.current_principal): FastAPI resolves
        # annotations in module globals, where ``self`` does not exist.
        async def principal_with_role(credentials: BearerCredentials) -> Principal:
            return check_role(await self.current_principal(credentials))

        return principal_with_role


def _role_check(roles: tuple[Role, ...]) -> Callable[[Principal], Principal]:
    if not roles:
        raise ValueError("require() needs at least one role")
    allowed = frozenset(roles)
    allowed_text = ", ".join(role.value for role in roles)

    def check_role(principal: Principal) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"role {principal.role.value} may not use this endpoint; "
                f"allowed: {allowed_text}",
            )
        return principal

    return check_role


def _installed_auth(request: Request) -> Auth:
    auth = getattr(request.app.state, "auth", None)
    if not isinstance(auth, Auth):
        raise RuntimeError("no Auth on this app: call Auth(settings).install(app)")
    return auth


async def current_principal(request: Request, credentials: BearerCredentials) -> Principal:
    """Dependency: the verified caller, checked by the Auth installed on the app."""
    return await _installed_auth(request).current_principal(credentials)


def require(
    *roles: Role,
) -> Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[Principal]]:
    """Like ``Auth.require``, with the Auth installed on the app."""
    check_role = _role_check(roles)

    async def principal_with_role(request: Request, credentials: BearerCredentials) -> Principal:
        return check_role(await _installed_auth(request).current_principal(credentials))

    return principal_with_role
