"""The Slack ack that never waits: record the raw event, answer 200, make the thread in the background.

``POST /slack/events`` with a message or mention event: the signature is checked on the raw bytes
(``verify.py``), the bytes are committed to the inbox (``Store.inbox_put``, one grouped transaction; a retry
with the same ``event_id`` finds its row and changes nothing) and Slack gets its 200. A background loop claims
inbox rows, turns each into a thread exactly as before (``slack_inbound.receive``: deduplicated by event id in
the thread's own transaction) and deletes the row. A crash between the ack and the thread leaves the row, which
the loop of the next process to start picks up; a crash after the thread but before the delete is harmless (the
event id is already recorded). Everything else (url_verification, clicks, modals, /opsgate) still goes to bolt,
so interactions keep their 3-second budget for dialogs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from bot.foreground import Foreground
from bot.store import InboxItem, QuarantineItem, Store
from bot.text import storable_key
from bot.wakeups import wait_set

log = structlog.get_logger("opsgate.slack")

INBOX = "slack"
EVENT_TYPES = frozenset({"app_mention", "message"})
_BATCH = 100
_CONCURRENCY = 32  # Slack threads handled at once (each one's events in order)
# A row claimed by a process that died is claimable again after this. Handling takes milliseconds, and handling
# one event twice is harmless (event-id refs), so the lease is short.
_LEASE_SECONDS = 10.0
# A failed event is tried again after 0.25 s, 0.5 s, 1 s, 2 s; the 5th failure quarantines it (a poison event must
# not keep failing forever, nor hold up the events behind it).
MAX_ATTEMPTS = 5
_FIRST_RETRY_SECONDS = 0.25

Handler = Callable[[dict[str, Any]], Awaitable[None]]


def event_id_of(body: bytes) -> str | None:
    """The ``event_id`` of a message or mention event callback we record; None for anything bolt handles."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("type") != "event_callback":
        return None
    event, event_id = payload.get("event"), payload.get("event_id")
    if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        return None
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:
        return None
    return storable_key(event_id)  # a NUL in the id would be refused by PostgreSQL (bot/text.py)


def conversation_of(body: dict[str, Any]) -> str:
    """Events of one Slack thread are handled in order: channel and root ts."""
    event = body.get("event") if isinstance(body.get("event"), dict) else {}
    assert isinstance(event, dict)
    return f"{event.get('channel')}:{event.get('thread_ts') or event.get('ts')}"


class EventInbox:
    """Records verified event callbacks before the ack and hands them to ``handle`` in the background."""

    def __init__(self, store: Store, handle: Handler, poll_interval: float,
                 foreground: Foreground | None = None) -> None:
        self.store = store
        self.foreground = foreground or Foreground()
        self.handle = handle
        self.poll_interval = poll_interval
        self.ready = asyncio.Event()

    async def record(self, event_id: str, body: bytes) -> bool:
        """Commit the raw event (False: a retry of one still waiting); the caller acks afterwards."""
        stored = await self.store.inbox_put(INBOX, event_id, body.decode())
        self.ready.set()
        return stored

    async def run(self) -> None:
        """Claim waiting events and handle them, until cancelled; first of all what a crash left behind."""
        while True:
            items = await self.store.inbox_claim(INBOX, _BATCH, _LEASE_SECONDS)
            if items:
                await self.handle_all(items)
            if len(items) < _BATCH:
                await wait_set(self.ready, self.poll_interval)
                self.ready.clear()

    async def handle_all(self, items: list[InboxItem]) -> None:
        """Each Slack thread's events in order, different Slack threads concurrently."""
        groups: dict[str, list[tuple[InboxItem, dict[str, Any]]]] = {}
        for item in items:
            try:
                body = json.loads(item.body)
            except ValueError:  # only verified JSON is recorded; never let one row stop the loop
                log.error("slack_event_unreadable", event_id=item.key, body=item.body[:2000])
                await self.store.inbox_done(INBOX, item.key)
                continue
            groups.setdefault(conversation_of(body), []).append((item, body))
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def in_order(group: list[tuple[InboxItem, dict[str, Any]]]) -> None:
            async with gate:
                for item, body in group:
                    await self.foreground.turn()  # acks first: making threads waits while they are answered
                    await self._handle_one(item, body)

        await asyncio.gather(*(in_order(group) for group in groups.values()))

    async def _handle_one(self, item: InboxItem, body: dict[str, Any]) -> None:
        try:
            await self.handle(body)
        except Exception:
            attempt = item.attempts + 1
            if attempt < MAX_ATTEMPTS:  # left in the inbox, claimable again after a short backoff
                delay = _FIRST_RETRY_SECONDS * 2 ** item.attempts
                log.exception("slack_event_failed", event_id=item.key, attempt=attempt, retry_in_s=delay)
                await self.store.inbox_retry(INBOX, item.key, delay)
                return
            log.exception("slack_event_given_up", event_id=item.key, attempts=item.attempts + 1)
            # A poison event: set aside for a person (visible in /quarantine), never retried again.
            await self.store.quarantine(QuarantineItem(
                channel=INBOX, key=item.key, reason=f"event handling failed {item.attempts + 1} times",
                detail=item.body, attempts=item.attempts + 1,
            ))
        await self.store.inbox_done(INBOX, item.key)
