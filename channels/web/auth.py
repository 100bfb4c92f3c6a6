"""Who is using the inbox: signed session cookies, CSRF tokens, and the two ways to log in.

- Login URL: bound to loopback with no OPSGATE_API_TOKEN, ``opsgate serve`` prints a URL with a random token
  (valid while the process runs, as Jupyter does); whoever opens it picks an identity from the approvers.
- Token: otherwise the login form (or an ``Authorization: Bearer`` header) takes OPSGATE_API_TOKEN.

The session cookie is HMAC-signed JSON (secret OPSGATE_WEB_SECRET, else random per process) carrying the user,
a CSRF token and a fingerprint of the credential used, so rotating the token ends old sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import time
from dataclasses import dataclass

from bot.config import Settings

COOKIE = "opsgate_session"
SESSION_SECONDS = 12 * 3600
OPEN_MODE_USER = "local"
_IDENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")


@dataclass(frozen=True)
class Session:
    """A browser's session: ``user`` is None until login; ``csrf`` must come back with every form post."""

    user: str | None
    csrf: str
    bearer: bool = False


def is_loopback(host: str) -> bool:
    """Whether the server only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def valid_identity(name: str) -> bool:
    """A user name, Slack id or email address without spaces or markup."""
    return bool(_IDENTITY.match(name))


class Auth:
    """This process's inbox credentials: the login-URL token or the API token, and the cookie secret."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.api_token = settings.api_token
        self.uses_login_url = self.api_token is None and is_loopback(settings.host)
        self.login_token = secrets.token_urlsafe(32) if self.uses_login_url else None
        secret = settings.web_secret
        self._secret = secret.encode() if secret else secrets.token_bytes(32)
        credential = self.api_token or self.login_token or ""
        self._fingerprint = hashlib.sha256(credential.encode()).hexdigest()[:16]

    @property
    def enabled(self) -> bool:
        """False when listening beyond loopback without OPSGATE_API_TOKEN: nobody can log in."""
        return self.api_token is not None or self.uses_login_url

    def identities(self) -> list[str]:
        """Identities offered at login: every configured approver, or ``local`` in open mode."""
        if self.settings.open_mode:
            return [OPEN_MODE_USER]
        names: dict[str, None] = dict.fromkeys(self.settings.approvers)
        for members in self.settings.approver_groups.values():
            names.update(dict.fromkeys(members))
        return list(names)

    def login_url(self, base: str) -> str | None:
        """The URL to print at start-up, when logging in by URL."""
        return f"{base.rstrip('/')}/login?token={self.login_token}" if self.login_token else None

    def check_login_token(self, token: str) -> bool:
        return self.login_token is not None and hmac.compare_digest(token.encode(), self.login_token.encode())

    def check_api_token(self, token: str) -> bool:
        return self.api_token is not None and hmac.compare_digest(token.encode(), self.api_token.encode())

    def check_credential(self, token: str) -> bool:
        """The login-URL token or the API token, whichever this process uses."""
        return self.check_login_token(token) or self.check_api_token(token)

    # --- cookies --------------------------------------------------------------------------------------------

    def new_session(self, user: str | None) -> Session:
        return Session(user=user, csrf=secrets.token_urlsafe(24))

    def encode(self, session: Session, now: float | None = None) -> str:
        """``payload.signature``, both base64url; expires after SESSION_SECONDS."""
        expires = int((now if now is not None else time.time()) + SESSION_SECONDS)
        data = {"u": session.user, "c": session.csrf, "k": self._fingerprint, "e": expires}
        payload = _b64(json.dumps(data, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def decode(self, value: str | None, now: float | None = None) -> Session | None:
        """The session in a cookie, or None if it is missing, forged, expired or from another credential."""
        if not value or "." not in value:
            return None
        payload, signature = value.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("k") != self._fingerprint:
            return None
        if not isinstance(data.get("e"), int) or data["e"] < (now if now is not None else time.time()):
            return None
        user, csrf = data.get("u"), data.get("c")
        if not isinstance(csrf, str) or not (user is None or isinstance(user, str)):
            return None
        return Session(user=user, csrf=csrf)

    def from_bearer(self, header: str | None, user_header: str | None) -> Session | None:
        """``Authorization: Bearer <OPSGATE_API_TOKEN>`` acts as ``X-Opsgate-User`` (default ``api``)."""
        if not header or not header.lower().startswith("bearer "):
            return None
        if not self.check_api_token(header[7:].strip()):
            return None
        user = (user_header or "api").strip()
        return Session(user=user if valid_identity(user) else None, csrf="", bearer=True)

    @staticmethod
    def csrf_ok(session: Session | None, submitted: str | None) -> bool:
        """A cookie session must echo its CSRF token; bearer requests carry no ambient credential."""
        if session is None:
            return False
        if session.bearer:
            return True
        return bool(submitted) and hmac.compare_digest(str(submitted).encode(), session.csrf.encode())

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
