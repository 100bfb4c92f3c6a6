"""Sign-in links for the web inbox: proof of identity by a link sent to the person's email or Slack DM.

A link is single use (consumed atomically), expires after ``LINK_TTL``, and is stored only as the SHA-256 of its
secret. Asking for one always gets the same answer, whether or not the identity is known or was rate-limited,
so the form tells nobody who has an account. Links are only sent to identities opsgate already knows (configured
approvers, people in OPSGATE_PEOPLE, holders of a personal token), so the form is no open mail relay, and they point at
OPSGATE_PUBLIC_URL (else the configured host and port) — never at the request's Host header, which a caller
controls. The message travels through the outbox like any other until it is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog

from bot.channel import Channel
from bot.config import Settings
from bot.credentials import SignInLink, digest, new_secret
from bot.events import utcnow
from bot.principals import same_person
from bot.store import OutboxItem, Store

log = structlog.get_logger("opsgate.signin")

LINK_TTL = timedelta(minutes=10)
LINKS_PER_WINDOW = 5
LINK_WINDOW = timedelta(minutes=15)
LINK_PATH = "/login/link"


def link_text(url: str, identity: str) -> str:
    """The body of the message that carries a sign-in link."""
    minutes = int(LINK_TTL.total_seconds() // 60)
    return (
        f"Someone (hopefully you) asked to sign in to the opsgate inbox as {identity}.\n\n"
        f"Open this link within {minutes} minutes to sign in; it works once:\n{url}\n\n"
        "If you did not ask for it, ignore this message: nothing happens without the link."
    )


class SignInLinks:
    """Issue and redeem sign-in links."""

    def __init__(self, settings: Settings, store: Store, channels: Sequence[Channel], outbox_ready: asyncio.Event,
                 base_url: str) -> None:
        self.settings = settings
        self.store = store
        self.channels = list(channels)
        self.outbox_ready = outbox_ready
        self.base_url = (settings.public_url or base_url).rstrip("/")

    def can_deliver(self, identity: str) -> bool:
        """Whether some configured channel can send a private message to ``identity``."""
        return any(c.direct_message(identity, "-", "-") is not None for c in self.channels)

    @property
    def available(self) -> bool:
        """Whether any channel can send sign-in links at all (email with SMTP, or Slack)."""
        return self.can_deliver("someone@example.com") or self.can_deliver("U00000000")

    async def known(self, identity: str) -> bool:
        """A configured approver, a person listed in OPSGATE_PEOPLE, or the person of an active personal token."""
        approvers = [*self.settings.approvers, *(m for g in self.settings.approver_groups.values() for m in g)]
        if any(same_person(identity, a, self.settings) for a in approvers):
            return True
        if self.settings.people.resolve(identity).mapped:
            return True
        return any(t.state() == "active" for t in await self.store.api_tokens(identity))

    async def request(self, identity: str, now: datetime | None = None) -> None:
        """Send a link to ``identity`` if it is known, deliverable and not rate-limited; silent otherwise."""
        now = now or utcnow()
        if not await self.known(identity):
            log.info("signin_link_refused", identity=identity, reason="unknown identity", audit=True)
            return
        secret = new_secret()
        url = f"{self.base_url}{LINK_PATH}?token={secret}"
        items = self._messages(identity, url)
        if not items:
            log.info("signin_link_refused", identity=identity, reason="no channel reaches it", audit=True)
            return
        link = SignInLink(hash=digest(secret), identity=identity, created_at=now, expires_at=now + LINK_TTL)
        if not await self.store.add_signin_link(link, limit=LINKS_PER_WINDOW, since=now - LINK_WINDOW):
            log.warning("signin_link_refused", identity=identity, reason="rate limited", audit=True)
            return
        await self.store.add_outbox(items)
        self.outbox_ready.set()
        log.info("signin_link_sent", identity=identity, channels=[i.channel for i in items], audit=True)

    def _messages(self, identity: str, url: str) -> list[OutboxItem]:
        """A message to ``identity`` and to the email addresses of its person (OPSGATE_PEOPLE), where a channel
        reaches them (a Slack DM only to a Slack id typed as such: the directory keeps ids lower-cased)."""
        subject = "Your opsgate sign-in link"
        targets = dict.fromkeys([identity, *self.settings.people.resolve(identity).emails])
        found = (c.direct_message(target, subject, link_text(url, identity))
                 for target in targets for c in self.channels)
        return [item for item in found if item is not None]

    async def redeem(self, secret: str, now: datetime | None = None) -> str | None:
        """The identity a link signs in, using it up; None if it is unknown, used or expired."""
        if not secret or len(secret) > 200:
            return None
        link = await self.store.consume_signin_link(digest(secret), now or utcnow())
        log.info("signin_link_used" if link else "signin_link_rejected",
                 identity=link.identity if link else None, audit=True)
        return link.identity if link else None
