"""Personal API tokens and the other secrets that prove who acts: their format, hashing, lifetimes, records.

A personal token is ``ogp_`` + 43 base62 characters (256 random bits) + a 6-character checksum, so secret
scanners can recognise a leaked one by its prefix and check it offline without false positives. Only the SHA-256
of a token is stored. A fast hash is enough here: slow hashes (bcrypt, argon2) protect low-entropy passwords
against guessing, and nobody can guess 256 random bits; a plain digest also lets the database find a token by an
index lookup instead of trying every row.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib
from datetime import datetime, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel

from bot.events import utcnow

TOKEN_PREFIX = "ogp_"
_ALPHABET = string.digits + string.ascii_letters  # base62: no '-' or '_', so a token is one "word" to grep for
_BODY = 43  # 62**43 > 2**256
_CHECK = 6
TOKEN_PATTERN = re.compile(rf"^{TOKEN_PREFIX}[0-9A-Za-z]{{{_BODY + _CHECK}}}$")
_IDENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
MAX_LIFETIME = timedelta(days=3650)
DEFAULT_LIFETIME = "90d"


LoginMethod = Literal["token", "link", "url", "relay"]  # personal token, sign-in link, login URL, trusted relay


class DurationError(ValueError):
    """A lifetime that cannot be read; the message says what is accepted."""


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK)


def new_token() -> str:
    """A fresh personal token: prefix, 256 random bits in base62, CRC32 checksum."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY))
    return f"{TOKEN_PREFIX}{body}{_checksum(body)}"


def looks_like_token(value: str) -> bool:
    """Whether ``value`` has the personal-token shape and a matching checksum (says nothing about validity)."""
    if not TOKEN_PATTERN.match(value):
        return False
    body = value[len(TOKEN_PREFIX):-_CHECK]
    return hmac.compare_digest(value[-_CHECK:], _checksum(body))


def digest(secret: str) -> str:
    """SHA-256 hex of a high-entropy secret: what is stored and looked up instead of the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    """A random URL-safe secret (sign-in links, session ids): 256 bits."""
    return secrets.token_urlsafe(32)


def new_token_id() -> str:
    """The public handle of a token (``tok_`` + 12 characters), shown by ``opsgate tokens list``."""
    return "tok_" + "".join(secrets.choice(_ALPHABET) for _ in range(12))


def is_identity(name: str) -> bool:
    """A user name, Slack id or email address: no spaces or markup, at most 100 characters."""
    return bool(_IDENTITY.match(name))


def parse_duration(text: str) -> timedelta | None:
    """``90m``, ``12h``, ``30d``, ``2w`` -> a timedelta; ``never`` -> None. DurationError says what is wrong."""
    if text.strip().lower() == "never":
        return None
    found = _DURATION.match(text)
    if not found:
        raise DurationError(
            f"cannot read the duration {text!r}: use a number and a unit, e.g. 90m, 12h, 30d or 2w (or never)"
        )
    value = int(found.group(1)) * _UNITS[found.group(2)]
    if value <= timedelta(0):
        raise DurationError(f"the duration {text!r} must be longer than zero")
    if value > MAX_LIFETIME:
        raise DurationError(f"the duration {text!r} is longer than {MAX_LIFETIME.days} days; use never instead")
    return value


class ApiToken(BaseModel):
    """A personal API token as stored: everything but the secret."""

    id: str
    person: str
    label: str = ""
    hash: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def state(self, now: datetime | None = None) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return "expired"
        return "active"


def issue_token(person: str, label: str = "", lifetime: timedelta | None = None,
                now: datetime | None = None) -> tuple[str, ApiToken]:
    """A new personal token for ``person``: the secret (to show once) and the record to store."""
    now = now or utcnow()
    secret = new_token()
    record = ApiToken(id=new_token_id(), person=person, label=label.strip(), hash=digest(secret), created_at=now,
                      expires_at=now + lifetime if lifetime else None)
    return secret, record


class SignInLink(BaseModel):
    """A single-use sign-in link for one identity, stored by the hash of its secret."""

    hash: str
    identity: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


class WebSession(BaseModel):
    """A logged-in inbox session, stored by the hash of the id its cookie carries."""

    hash: str
    person: str
    csrf: str
    method: LoginMethod
    token_id: str | None = None
    binding: str | None = None
    created_at: datetime
    expires_at: datetime


class Credentials(Protocol):
    """Personal API tokens, inbox sessions and sign-in links; every secret is looked up by its SHA-256."""

    async def add_api_token(self, token: ApiToken) -> None: ...

    async def api_tokens(self, person: str | None = None) -> list[ApiToken]: ...

    async def api_token_by_hash(self, token_hash: str) -> ApiToken | None: ...

    async def touch_api_token(self, token_id: str, at: datetime) -> None: ...

    async def revoke_api_tokens(
        self, at: datetime, *, key: str | None = None, person: str | None = None
    ) -> list[ApiToken]:
        """Revoke one token (id or hash) or all of a person's; their inbox sessions end in the same transaction."""
        ...

    async def add_session(self, session: WebSession) -> None: ...

    async def session_by_hash(self, session_hash: str) -> WebSession | None: ...

    async def delete_session(self, session_hash: str) -> bool: ...

    async def add_signin_link(self, link: SignInLink, *, limit: int, since: datetime) -> bool:
        """Insert unless ``limit`` links for the identity were made since ``since``."""
        ...

    async def consume_signin_link(self, link_hash: str, at: datetime) -> SignInLink | None:
        """Use a link once: None if unknown, already used or expired."""
        ...
