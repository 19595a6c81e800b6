"""The partner's one-time link: the subject a partner's answer is filed under, and the
signed token of the link mailed to each partner city's contact. No I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime


def partner_confirmation_subject(application_id: str, partner_email: str | None = None) -> str:
    """What a partner's answer is filed under: every request about one partner's
    confirmation gets it again (``shared.messaging.receipts``).

    Without ``partner_email``: the subject every request had when an application had one
    partner, which the receipts and links recorded then still carry. The e-mail is hashed
    to fit a subject's 200 characters.
    """
    if partner_email is None:
        return f"partner-confirmation:{application_id}"
    digest = hashlib.sha256(partner_email.lower().encode()).hexdigest()[:20]
    return f"partner-confirmation:{application_id}:{digest}"


def _link_signature(secret: str, link_id: str, expires: int) -> str:
    digest = hmac.new(
        secret.encode(), f"partner-confirmation:{link_id}:{expires}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_partner_link(secret: str, link_id: str, expires_at: datetime) -> str:
    """``<link id>.<expiry>.<HMAC-SHA256>``: only intake can make one, nobody can alter one."""
    expires = int(expires_at.timestamp())
    return f"{link_id}.{expires}.{_link_signature(secret, link_id, expires)}"


@dataclass(frozen=True)
class PartnerLinkToken:
    link_id: str
    expires: int


def read_partner_link(secret: str, token: str) -> PartnerLinkToken | None:
    """The link id of a genuine token, or None (forged, altered or malformed)."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or not re.fullmatch(r"[0-9a-f]{32}", parts[0]):
        return None
    link_id, expires_text, signature = parts
    expected = _link_signature(secret, link_id, int(expires_text))
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return None
    return PartnerLinkToken(link_id=link_id, expires=int(expires_text))
