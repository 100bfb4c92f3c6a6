"""Who a Slack user is: the email address Slack reports for them (``users.info``, scope ``users:read.email``).

The core matches people by that address (an approver configured only as ``alice@example.com`` approves from
Slack), so only what Slack itself reports counts, never anything typed. An address is trusted only for a
member of our own workspace (or Enterprise Grid org) whose account is active, not a bot, and whose email
Slack has not marked unconfirmed; a Slack Connect user from another organisation is known by their id alone.

Lookups are cached per user for ``ttl`` seconds (failures for a short while, so an outage is not hammered)
and bounded by ``timeout``: they run before the ack of a Slack request, which must stay far below 3 s.
Any failure means "no email": the user is then only who an explicit OPSGATE_PEOPLE mapping says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.people import EMAIL, Actor

log = structlog.get_logger("opsgate.slack")

LOOKUP_TIMEOUT = 1.5  # seconds; the ack of the request waiting for it must stay below Slack's 3 s
CACHE_TTL = 600.0  # a known address is re-checked every 10 minutes (deactivations, changed addresses)
FAILURE_TTL = 30.0  # after an error, ask again only after this long
MAX_CACHED = 10_000

ActorLookup = Callable[[str], Awaitable[Actor]]


async def id_only(user_id: str) -> Actor:
    """An actor known by their Slack id alone (no lookup)."""
    return Actor(id=user_id)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Profile(_Model):
    email: str | None = None


class EnterpriseUser(_Model):
    enterprise_id: str | None = None
    teams: list[str] = Field(default_factory=list)


class SlackUser(_Model):
    """The fields of a ``users.info`` user object that decide whether its email is trusted."""

    id: str
    team_id: str | None = None
    deleted: bool = False
    is_bot: bool = False
    is_app_user: bool = False
    is_email_confirmed: bool | None = None
    profile: Profile = Profile()
    enterprise_user: EnterpriseUser | None = None

    def in_team(self, team_id: str) -> bool:
        """A member of workspace ``team_id`` (directly, or through their Enterprise Grid org's teams)."""
        return self.team_id == team_id or bool(self.enterprise_user and team_id in self.enterprise_user.teams)


def trusted_email(user: SlackUser, team_id: str) -> str | None:
    """The address opsgate may match people by, or None when it must not (see the module docstring)."""
    email = (user.profile.email or "").strip().lower()
    if not email or not EMAIL.match(email):
        return None
    if user.deleted or user.is_bot or user.is_app_user or user.is_email_confirmed is False:
        return None
    if not user.in_team(team_id):
        return None  # an external (Slack Connect) user: their organisation, not ours, vouches for the address
    return email


class SlackUsers:
    """Slack user id -> ``Actor`` with the email Slack vouches for, cached and time-bounded."""

    def __init__(
        self, client: AsyncWebClient, team_id: Callable[[], str | None], *, timeout: float = LOOKUP_TIMEOUT,
        ttl: float = CACHE_TTL, failure_ttl: float = FAILURE_TTL, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.team_id = team_id
        self.timeout = timeout
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def actor(self, user_id: str) -> Actor:
        """The actor behind a signed Slack user id: the id, plus its trusted email when Slack reports one."""
        now = self.clock()
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > now:
            return Actor(id=user_id, email=cached[1])
        email, ttl = await self._lookup(user_id)
        if len(self._cache) >= MAX_CACHED:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
        self._cache[user_id] = (now + ttl, email)
        return Actor(id=user_id, email=email)

    async def _lookup(self, user_id: str) -> tuple[str | None, float]:
        """The trusted email (or None) and how long that answer holds."""
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.users_info(user=user_id)
            user = SlackUser.model_validate(response.get("user") or {})
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            error = data.get("error") or exc.response.status_code
            log.warning("slack_user_lookup_failed", user=user_id, error=str(error),
                        hint="add the users:read and users:read.email scopes" if error == "missing_scope" else None)
            return None, self.ttl if error == "user_not_found" else self.failure_ttl
        except (TimeoutError, aiohttp.ClientError, OSError, ValidationError) as exc:
            log.warning("slack_user_lookup_failed", user=user_id, error=f"{type(exc).__name__}: {exc}")
            return None, self.failure_ttl
        team = self.team_id()
        if team is None:  # auth.test has not answered yet: ask again soon rather than trust blindly
            return None, self.failure_ttl
        email = trusted_email(user, team)
        if email is None and user.profile.email:
            log.info("slack_user_email_not_trusted", user=user_id, team=user.team_id)
        return email, self.ttl
