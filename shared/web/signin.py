"""One sign-in for every area: its form, its two routes, and the page shown instead of a
page (or a form's answer) when the visitor is not, or no longer, signed in."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shared.web.render import Pages
from shared.web.session import Door, Posted, SignInNeededError, Viewer


class SignIn:
    """The sign-in of the area behind ``door``, drawn by ``pages``; ``who`` says whose
    token it wants ("a reviewer")."""

    def __init__(self, door: Door, pages: Pages, *, who: str) -> None:
        self.door = door
        self.pages = pages
        self.who = who

    def form(
        self, request: Request, error: SignInNeededError | None = None, *, quiet: bool = False
    ) -> HTMLResponse:
        """The sign-in form saying why it is shown; a cookie whose token is no good is
        forgotten. ``quiet``: a page visited without a cookie at all, which is no error."""
        if error is None or (quiet and not error.message):
            return self.pages.sign_in(request, who=self.who)
        response = self.pages.sign_in(request, error.message, error.status_code, who=self.who)
        if error.status_code in (401, 403):
            self.door.forget(response)
        return response

    async def viewer(self, request: Request) -> Viewer | HTMLResponse:
        """Who a page is for, or the sign-in form to show instead."""
        try:
            return await self.door.viewer(request)
        except SignInNeededError as error:
            return self.form(request, error, quiet=True)

    async def posted(self, request: Request) -> Posted | HTMLResponse:
        """A form posted by a signed-in viewer (its CSRF value checked), or the sign-in
        form to answer with instead."""
        try:
            return await self.door.posted(request)
        except SignInNeededError as error:
            return self.form(request, error)


def add_sign_in_routes(router: APIRouter, door: Door, pages: Pages, *, who: str) -> SignIn:
    """``POST <area>/sign-in`` (a token pasted into the form) and ``POST <area>/sign-out``
    (a signed-in form, so another site cannot sign anyone out) on ``router``; the area's
    pages use the ``SignIn`` returned."""
    sign_in = SignIn(door, pages, who=who)

    @router.post("/sign-in")
    async def signing_in(request: Request) -> Response:
        try:
            token = await door.signing_in(request)
        except SignInNeededError as error:
            return pages.sign_in(request, error.message, error.status_code, who=who)
        response = RedirectResponse(door.path, status_code=303)
        door.remember(response, request, token)
        return response

    @router.post("/sign-out")
    async def signing_out(request: Request) -> Response:
        posted = await sign_in.posted(request)
        if isinstance(posted, HTMLResponse):
            return posted
        response = RedirectResponse(door.path, status_code=303)
        door.forget(response)
        return response

    return sign_in
