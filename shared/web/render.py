"""Rendering: Jinja2 templates (autoescaped), the shared layout, the security headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

from shared.web.forms import Problems

SHARED_TEMPLATES: Final = Path(__file__).parent / "templates"
# Styles are inlined from the one stylesheet, and pages run no script at all.
HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Pages:
    """One app's pages: its own templates first, then the shared layout and sign-in.

    ``title`` names the area in the header and the window title; ``home`` is its path.
    """

    def __init__(self, directory: Path, *, title: str, home: str) -> None:
        environment = Environment(
            loader=ChoiceLoader([FileSystemLoader(directory), FileSystemLoader(SHARED_TEMPLATES)]),
            autoescape=True,
            # A misspelt name is an error in the tests, not an empty string on the page.
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        environment.filters["sentence"] = sentence
        environment.globals["no_problems"] = Problems()
        self.templates = Jinja2Templates(env=environment)
        self.title = title
        self.home = home

    def render(
        self, request: Request, name: str, *, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        context.setdefault("viewer", None)
        context.setdefault("flash", "")
        context.setdefault("flash_kind", "ok")
        context.setdefault("page_title", "")
        context.update(area=self.title, home=self.home)
        response = self.templates.TemplateResponse(
            request, name, context, status_code=status_code, headers=HEADERS
        )
        assert isinstance(response, HTMLResponse)
        return response

    def text(self, name: str, **context: Any) -> str:
        """A page as text, for a route that builds its own response."""
        context = {"viewer": None, "flash": "", "flash_kind": "ok", "page_title": "", **context}
        context.update(area=self.title, home=self.home)
        return self.templates.env.get_template(name).render(context)

    def sign_in(
        self, request: Request, message: str = "", status_code: int = 200, *, who: str = ""
    ) -> HTMLResponse:
        """The sign-in form; ``who`` says whose token it wants."""
        return self.render(
            request,
            "signin.html",
            status_code=status_code,
            page_title="Sign in",
            flash=message,
            flash_kind="error",
            who=who,
        )


def sentence(text: str) -> str:
    """A problem's words as a sentence: capital first, full stop last."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."
