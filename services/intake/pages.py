"""The one page a partner sister city sees: the confirmation link's page, in the shared
layout (``shared.web``). Its form needs no CSRF value: the link's token is the credential,
it works once, and the answer it records is the partner's own."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from shared.web import Pages

PAGES: Final = Pages(Path(__file__).parent / "templates", title="Exchange confirmation", home="")


def confirmation_page(
    *,
    action: str,
    partner_city: str,
    member_name: str,
    title: str,
    exchange_start: str,
    exchange_end: str,
    due: str,
) -> str:
    return PAGES.text(
        "partner_confirm.html",
        page_title="Confirm the exchange",
        action=action,
        partner_city=partner_city,
        member_name=member_name,
        title=title,
        exchange_start=exchange_start,
        exchange_end=exchange_end,
        due=due,
    )


def answered_page(confirmed: bool, member_name: str) -> str:
    return PAGES.text(
        "partner_answered.html",
        page_title="Thank you",
        said="confirmed" if confirmed else "declined",
        member_name=member_name,
    )


def message_page(title: str, message: str) -> str:
    return PAGES.text("partner_message.html", page_title=title, message=message)
