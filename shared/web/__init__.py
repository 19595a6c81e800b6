"""The people's pages (reviewer inbox, applicant portal, officer console, dashboard): one
look, one way to render and one sign-in.

Pages are Jinja2 templates with autoescaping on, extending ``templates/layout.html`` with
its one stylesheet inlined (no asset from elsewhere, so the strict CSP holds). A signed-in
area is a ``Door``: a bearer token in an HttpOnly, SameSite=Strict cookie scoped to its
path, and a CSRF value derived from that token on every form; ``add_sign_in_routes``
gives an area its sign-in and sign-out, the same for every area.
"""

from shared.web.render import Pages
from shared.web.session import Door, Posted, SignInNeededError, Viewer, read_form
from shared.web.signin import SignIn, add_sign_in_routes

__all__ = [
    "Door",
    "Pages",
    "Posted",
    "SignIn",
    "SignInNeededError",
    "Viewer",
    "add_sign_in_routes",
    "read_form",
]
