"""Sign-in by bearer token for the pages, and the CSRF value every form carries.

The token lives in an HttpOnly, SameSite=Strict cookie scoped to the area's path; the CSRF
value is an HMAC of the token under the deployment's link secret, so it needs no storage
and dies with the token. The pages call the same use cases as the JSON API, so the token
here is checked the same way: by the app's ``Auth`` verifier.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from shared.auth import Auth, InvalidTokenError, Principal, Role, SigningKeysUnavailableError


class SignInNeededError(Exception):
    """The page needs a (new) sign-in; ``message`` says why, empty when none was made."""

    def __init__(self, message: str = "", status_code: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass(frozen=True)
class Viewer:
    """Who a page is for, and the CSRF value its forms must carry; ``token``: the bearer
    token the viewer signed in with, for a page that calls another service's API as them."""

    principal: Principal
    csrf: str
    token: str = field(repr=False)

    @property
    def name(self) -> str:
        principal = self.principal
        return principal.reviewer_id or principal.member_id or principal.subject


@dataclass(frozen=True)
class Posted:
    """A form posted by a signed-in viewer, its CSRF value checked."""

    viewer: Viewer
    form: dict[str, str]


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form; of a repeated name, the last value."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


class Door:
    """One signed-in area of an app at ``path``, letting in tokens of ``roles`` only."""

    def __init__(self, path: str, *, cookie: str, roles: tuple[Role, ...], refusal: str) -> None:
        self.path = path
        self.cookie = cookie
        self.roles = roles
        self.refusal = refusal  # "This inbox is for reviewers"

    def csrf(self, request: Request, token: str) -> str:
        key = request.app.state.runtime.settings.link_secret.get_secret_value().encode()
        purpose = f"{self.path.strip('/')}-csrf:".encode()
        return hmac.new(key, purpose + token.encode(), hashlib.sha256).hexdigest()[:40]

    async def verify(self, request: Request, token: str) -> Principal:
        """The token's principal; ``InvalidTokenError`` or ``SignInNeededError`` if refused."""
        auth = request.app.state.auth
        assert isinstance(auth, Auth)
        try:
            if auth.verifier.fetches_keys:  # PyJWKClient fetches over blocking urllib
                principal = await run_in_threadpool(auth.verifier.verify, token)
            else:
                principal = auth.verifier.verify(token)
        except SigningKeysUnavailableError as error:
            raise SignInNeededError(
                "Tokens cannot be checked right now; please try again later.", 503
            ) from error
        if principal.role not in self.roles:
            raise SignInNeededError(
                f"{self.refusal}; a {principal.role.value} token cannot sign in.", 403
            )
        return principal

    async def viewer(self, request: Request) -> Viewer:
        token = request.cookies.get(self.cookie)
        if not token:
            raise SignInNeededError()
        try:
            principal = await self.verify(request, token)
        except InvalidTokenError as error:
            raise SignInNeededError(f"Please sign in again: {error}.") from error
        return Viewer(principal, self.csrf(request, token), token)

    async def posted(self, request: Request) -> Posted:
        """The signed-in viewer's form, its CSRF value checked."""
        viewer = await self.viewer(request)
        form = await read_form(request)
        if not hmac.compare_digest(form.get("csrf", ""), viewer.csrf):
            raise SignInNeededError("The form expired; please sign in again.", 403)
        return Posted(viewer, form)

    async def signing_in(self, request: Request) -> str:
        """The token a sign-in form carries, verified; ``SignInNeededError`` says why not."""
        token = "".join((await read_form(request)).get("token", "").split())
        if token.lower().startswith("bearer"):
            token = token[len("bearer") :]
        try:
            await self.verify(request, token)
        except InvalidTokenError as error:
            raise SignInNeededError(f"That token cannot be used: {error}.") from error
        return token

    def remember(self, response: Response, request: Request, token: str) -> None:
        response.set_cookie(
            self.cookie,
            token,
            path=self.path,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def forget(self, response: Response) -> None:
        response.delete_cookie(self.cookie, path=self.path)
