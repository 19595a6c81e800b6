"""The one page a partner sister city sees: the confirmation link's page, plain HTML."""

from __future__ import annotations

from html import escape

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;"
    "line-height:1.5;color:#1f2933}button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem}"
    "textarea{width:100%;min-height:4rem}.muted{color:#52606d}"
)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<meta name='robots' content='noindex'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


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
    return _page(
        "Confirm the exchange",
        f"<h1>Exchange with {escape(member_name)}</h1>"
        f"<p>{escape(member_name)} has applied for funding for an exchange with "
        f"{escape(partner_city)}: <strong>{escape(title)}</strong>, from "
        f"{escape(exchange_start)} to {escape(exchange_end)}.</p>"
        f"<p>Does {escape(partner_city)} take part in and host this exchange? "
        f"<span class='muted'>Please answer by {escape(due)}. The link works once.</span></p>"
        f"<form method='post' action='{escape(action)}'>"
        "<p><label for='note'>A note for the applicant (optional)</label><br>"
        "<textarea id='note' name='note' maxlength='2000'></textarea></p>"
        "<button type='submit' name='answer' value='confirm'>We confirm</button>"
        "<button type='submit' name='answer' value='decline'>We decline</button>"
        "</form>",
    )


def answered_page(confirmed: bool, member_name: str) -> str:
    said = "confirmed" if confirmed else "declined"
    return _page(
        "Thank you",
        f"<h1>Thank you</h1><p>You {said} the exchange with {escape(member_name)}. "
        "The applicant and the program officers have been told.</p>",
    )


def message_page(title: str, message: str) -> str:
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")
