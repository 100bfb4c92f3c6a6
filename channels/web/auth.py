"""Who is using the inbox: server-side sessions behind a signed cookie, CSRF tokens, and what proves identity.

Ways in (channels/web/login.py): a personal token (``opsgate tokens create``); a single-use sign-in link sent to
the person's email or Slack DM (bot/signin.py); the login URL ``opsgate serve`` prints on loopback in the first-run
open mode (no approvers, no OPSGATE_API_TOKEN), which signs in as ``local``; and, only with
OPSGATE_API_TRUSTED_RELAY, OPSGATE_API_TOKEN plus an asserted identity. Scripts send ``Authorization: Bearer``.

A logged-in cookie carries only a random session id, HMAC-signed (OPSGATE_WEB_SECRET, else random per process);
the session itself — person, CSRF token, expiry, how it was proven — is a row stored under the id's SHA-256, so
logout and token revocation end it server-side. Before login the cookie holds just a signed CSRF token for the
login forms (no row, so anonymous visitors cost no writes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.config import Settings
from bot.credentials import LoginMethod, WebSession, digest, is_identity, new_secret
from bot.events import utcnow
from bot.principals import BadCredential, PersonalCaller, SharedCaller, authenticate, bearer_of, same_person
from bot.store import Store

COOKIE = "opsgate_session"
SESSION_SECONDS = 12 * 3600
OPEN_MODE_USER = "local"


@dataclass(frozen=True)
class Session:
    """A browser's session: ``user`` is None until login; ``csrf`` must come back with every form post.
    ``key`` is the stored session's id hash (None before login and for bearer requests)."""

    user: str | None
    csrf: str
    bearer: bool = False
    key: str | None = None


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
    return is_identity(name)


def _fingerprint(credential: str | None) -> str | None:
    return hashlib.sha256(credential.encode()).hexdigest()[:32] if credential else None


class Auth:
    """This process's inbox credentials (login URL, shared token), cookie signing and the session store."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store
        self.api_token = settings.api_token
        # The printed login URL is the first-run path only: loopback, no shared token, no approvers to prove.
        self.uses_login_url = self.api_token is None and is_loopback(settings.host) and settings.open_mode
        self.login_token = secrets.token_urlsafe(32) if self.uses_login_url else None
        secret = settings.web_secret
        self._secret = secret.encode() if secret else secrets.token_bytes(32)

    def bind(self, store: Store) -> None:
        """Give the sessions their store (the wiring binds channels to the service after construction)."""
        self.store = store

    @property
    def relay(self) -> bool:
        """OPSGATE_API_TRUSTED_RELAY with a shared token: its holder may sign in as anyone."""
        return bool(self.api_token and self.settings.api_trusted_relay)

    def login_url(self, base: str) -> str | None:
        """The URL to print at start-up, when logging in by URL."""
        return f"{base.rstrip('/')}/login?token={self.login_token}" if self.login_token else None

    def check_login_token(self, token: str) -> bool:
        return self.login_token is not None and hmac.compare_digest(token.encode(), self.login_token.encode())

    def check_api_token(self, token: str) -> bool:
        return self.api_token is not None and hmac.compare_digest(token.encode(), self.api_token.encode())

    # --- server-side sessions -------------------------------------------------------------------------------

    def _binding(self, method: LoginMethod) -> str | None:
        """Sessions opened with a process credential end when it changes (a restart's new URL, a rotated token)."""
        if method == "url":
            return _fingerprint(self.login_token)
        if method == "relay":
            return _fingerprint(self.api_token)
        return None

    async def open(self, person: str, method: LoginMethod, *, token_id: str | None = None,
                   until: datetime | None = None) -> tuple[str, Session]:
        """Store a new session for ``person``; return its cookie value and the session (with a new CSRF token)."""
        assert self.store is not None, "Auth.bind(store) first"
        now = utcnow()
        expires = now + timedelta(seconds=SESSION_SECONDS)
        if until is not None:
            expires = min(expires, until)  # a session never outlives the token that opened it
        session_id = new_secret()
        record = WebSession(hash=digest(session_id), person=person, csrf=secrets.token_urlsafe(24), method=method,
                            token_id=token_id, binding=self._binding(method), created_at=now, expires_at=expires)
        await self.store.add_session(record)
        return self._encode({"s": session_id}, expires.timestamp()), Session(person, record.csrf, key=record.hash)

    async def close(self, session: Session | None) -> None:
        """Log out: delete the stored session, so its cookie is worthless even if it was copied."""
        if session is not None and session.key is not None and self.store is not None:
            await self.store.delete_session(session.key)

    async def current(self, cookie: str | None, authorization: str | None, asserted: str | None) -> Session | None:
        """The bearer session if a valid token is sent, else the cookie's session (logged in or not), else None."""
        if bearer_of(authorization) is not None:
            bearer = await self._from_bearer(authorization, asserted)
            if bearer is not None:
                return bearer
        data = self._decode(cookie)
        if data is None:
            return None
        if isinstance(data.get("a"), str):
            return Session(user=None, csrf=data["a"])
        if not isinstance(data.get("s"), str) or self.store is None:
            return None
        record = await self.store.session_by_hash(digest(data["s"]))
        if record is None or record.expires_at <= utcnow():
            return None
        if record.method in ("url", "relay") and (
            record.binding is None or record.binding != self._binding(record.method)
            or (record.method == "relay" and not self.relay)
        ):
            return None
        return Session(user=record.person, csrf=record.csrf, key=record.hash)

    async def _from_bearer(self, authorization: str | None, asserted: str | None) -> Session | None:
        """A personal token acts as its person; the shared token only as a trusted relay (``X-Opsgate-User``)."""
        if self.store is None:
            return None
        try:
            caller = await authenticate(authorization, self.settings, self.store)
        except BadCredential:
            return None
        if isinstance(caller, PersonalCaller):
            if asserted and not same_person(asserted, caller.person, self.settings):
                return None  # X-Opsgate-User naming someone else: this token cannot act as them
            return Session(user=caller.person, csrf="", bearer=True)
        assert isinstance(caller, SharedCaller)
        if not caller.relay:
            return None  # the shared token proves no person, and the inbox acts only as people
        user = (asserted or "api").strip()
        return Session(user=user if valid_identity(user) else None, csrf="", bearer=True)

    # --- cookies --------------------------------------------------------------------------------------------

    def anonymous(self) -> tuple[str, Session]:
        """A pre-login cookie: only a signed CSRF token for the login forms."""
        csrf = secrets.token_urlsafe(24)
        return self._encode({"a": csrf}, time.time() + SESSION_SECONDS), Session(user=None, csrf=csrf)

    def anonymous_cookie(self, session: Session) -> str:
        """The cookie value that keeps an anonymous session's CSRF token."""
        return self._encode({"a": session.csrf}, time.time() + SESSION_SECONDS)

    def _encode(self, data: dict[str, str], expires: float) -> str:
        """``payload.signature``, both base64url; the payload carries its own expiry."""
        payload = _b64(json.dumps({**data, "e": int(expires)}, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def _decode(self, value: str | None, now: float | None = None) -> dict[str, Any] | None:
        """The cookie's payload, or None if it is missing, forged or expired."""
        if not value or "." not in value:
            return None
        payload, signature = value.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("e"), int):
            return None
        if data["e"] < (now if now is not None else time.time()):
            return None
        return data

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
