"""Who is calling over HTTP (API and inbox scripts), proven by a bearer token, and as whom they may act.

- A **personal token** (``ogp_…``, ``opsgate tokens create``) is one person: it acts as that person; a ``user``
  that names someone else is refused.
- The **shared** ``OPSGATE_API_TOKEN`` proves only that the caller holds it. It acts as the service identity
  ``api``: it may start threads, read them and post messages, but not assert a user, and not decide approvals —
  unless ``OPSGATE_API_TRUSTED_RELAY=true`` declares its holder a relay that authenticates people itself; then it
  may assert anyone (the old behaviour, now opt-in).

Threads started with the shared token are requested by ``api``, so no asserted name can be used to dodge the
four-eyes rule: with the shared token nobody decides at all, and a personal token can only name its own person.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from bot.config import Settings
from bot.credentials import TOKEN_PREFIX, digest, looks_like_token
from bot.errors import NotAuthorized
from bot.events import utcnow
from bot.people import same_person as people_match
from bot.store import Store

SHARED_USER = "api"
_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is precise to a minute: no write on every request


class PersonalCaller(BaseModel):
    """The holder of a personal token: one person."""

    kind: Literal["personal"] = "personal"
    person: str
    token_id: str
    expires_at: datetime | None = None


class SharedCaller(BaseModel):
    """The holder of OPSGATE_API_TOKEN; ``relay`` when OPSGATE_API_TRUSTED_RELAY lets it assert users."""

    kind: Literal["shared"] = "shared"
    relay: bool = False


class BadCredential(Exception):
    """A bearer token that proves nothing; the message says why (answered with 401)."""


def same_person(a: str, b: str, settings: Settings) -> bool:
    """Whether two identities are the same person (OPSGATE_PEOPLE mappings, else case-insensitive equality):
    the one comparison every credential check uses."""
    people = settings.people
    return people_match(people.resolve(a), people.resolve(b))


def acting_user(caller: PersonalCaller | SharedCaller, asserted: str | None, settings: Settings, *,
                deciding: bool) -> str:
    """The user a request acts as; NotAuthorized (403) when the caller may not act as ``asserted`` or decide."""
    asserted = asserted.strip() if asserted and asserted.strip() else None
    if isinstance(caller, PersonalCaller):
        if asserted is not None and not same_person(asserted, caller.person, settings):
            raise NotAuthorized(
                f"this token belongs to {caller.person}; it cannot act as {asserted} "
                "(leave out user, or use that person's own token)"
            )
        return asserted or caller.person
    if caller.relay:
        return asserted or SHARED_USER
    if deciding:
        raise NotAuthorized(
            "decisions need a personal token: the shared OPSGATE_API_TOKEN does not prove who decides. Create one "
            "with `opsgate tokens create --user YOU` and send it as the bearer token (or, for a relay that "
            "authenticates people itself, set OPSGATE_API_TRUSTED_RELAY=true)"
        )
    if asserted is not None and not same_person(asserted, SHARED_USER, settings):
        raise NotAuthorized(
            f"the shared OPSGATE_API_TOKEN cannot act as {asserted}: its requests are made by {SHARED_USER}. "
            "Leave out user, send that person's personal token, or set OPSGATE_API_TRUSTED_RELAY=true for a "
            "trusted relay"
        )
    return SHARED_USER


def bearer_of(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, else None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def authenticate(
    authorization: str | None, settings: Settings, store: Store, now: datetime | None = None
) -> PersonalCaller | SharedCaller:
    """The caller a bearer header proves, or BadCredential saying why not."""
    token = bearer_of(authorization)
    if token is None:
        hint = "" if settings.api_token else " (OPSGATE_API_TOKEN is not set, so only personal tokens are accepted)"
        raise BadCredential(f"missing bearer token: send Authorization: Bearer <personal token>{hint}")
    if token.startswith(TOKEN_PREFIX):
        return await personal_caller(token, store, now)
    if settings.api_token and hmac.compare_digest(token.encode(), settings.api_token.encode()):
        return SharedCaller(relay=settings.api_trusted_relay)
    if not settings.api_token:
        raise BadCredential("wrong bearer token: OPSGATE_API_TOKEN is not set, so only personal tokens (ogp_…) "
                            "are accepted; create one with `opsgate tokens create --user YOU`")
    raise BadCredential("wrong bearer token")


async def personal_caller(token: str, store: Store, now: datetime | None = None) -> PersonalCaller:
    """The person a personal token belongs to; BadCredential if it is malformed, unknown, revoked or expired."""
    if not looks_like_token(token):
        raise BadCredential("malformed personal token (copy it whole: ogp_ and 49 letters and digits)")
    hashed = digest(token)
    record = await store.api_token_by_hash(hashed)
    if record is None or not hmac.compare_digest(record.hash, hashed):
        raise BadCredential("unknown personal token")
    now = now or utcnow()
    state = record.state(now)
    if state == "revoked":
        raise BadCredential(f"personal token {record.id} was revoked")
    if state == "expired":
        raise BadCredential(f"personal token {record.id} expired; create a new one with `opsgate tokens create`")
    if record.last_used_at is None or now - record.last_used_at >= _TOUCH_EVERY:
        await store.touch_api_token(record.id, now)
    return PersonalCaller(person=record.person, token_id=record.id, expires_at=record.expires_at)
