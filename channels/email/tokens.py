"""Approval tokens: ``<approval id>-<mac>`` in the plus-addressed Reply-To of each approval email.

The mac is a truncated HMAC-SHA256 of ``approval_id:approver`` under an instance secret kept in the store, so
verifying needs no lookup, a token is useless for another approval or another approver, and it cannot be
guessed. Single use follows from the core: the first decision on an approval wins, later ones are refused; and a
token expires TOKEN_TTL after its approval was requested.
Only lower-case letters and digits: mail systems may lower-case the local part.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

_MAC_BYTES = 10  # 80 bits: each guess costs an email, and the mac is bound to approver and approval
_TOKEN = re.compile(r"^(?P<approval>[a-z0-9]{8,40})-(?P<mac>[a-z2-7]{16})$")
TOKEN_TTL = timedelta(days=7)  # after that an approval can still be decided in the web inbox, Slack or the API
SECRET_REF_CHANNEL = "email-secret"  # stored once as a ref: inserting it is atomic across processes


def new_secret() -> str:
    """A fresh instance secret (stored once with set_state)."""
    return secrets.token_urlsafe(32)


def _mac(secret: str, approval_id: str, approver: str) -> str:
    digest = hmac.new(secret.encode(), f"{approval_id}:{approver.lower()}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:_MAC_BYTES]).decode().lower()


def make_token(secret: str, approval_id: str, approver: str) -> str:
    """The token an approver's reply must carry for ``approval_id``."""
    return f"{approval_id.lower()}-{_mac(secret, approval_id.lower(), approver)}"


@dataclass(frozen=True)
class TokenClaim:
    """A token-shaped plus-tag: the approval it names and its mac (not yet verified)."""

    approval_id: str
    mac: str

    def valid_for(self, secret: str, approver: str) -> bool:
        """True when the mac was issued for this approval to ``approver``."""
        return hmac.compare_digest(self.mac, _mac(secret, self.approval_id, approver))


def expired(requested_at: datetime, now: datetime) -> bool:
    """Tokens of an approval requested more than TOKEN_TTL ago no longer decide anything."""
    return now - requested_at > TOKEN_TTL


def read_token(tag: str) -> TokenClaim | None:
    """Parse a plus-tag that looks like a token; None for anything else (e.g. an agent name)."""
    match = _TOKEN.match(tag.lower())
    return TokenClaim(match.group("approval"), match.group("mac")) if match else None
