"""Delivering outbox rows through their channels, with backoff; nothing is lost while a channel is down.

A channel that says "later" (DeliveryRetry) is retried with backoff for as long as it takes. A row that can never
go out is set aside in the quarantine, marked failed and recorded on its thread, so the rows after it do not wait:
its payload cannot be read, the channel refused it (DeliveryFailed), or it failed unexpectedly (a bug, a malformed
payload the channel chokes on, a delivery that hangs) on its ``max_attempts``-th attempt.
"""

from __future__ import annotations

import asyncio
import random

import structlog

from bot import telemetry
from bot.channel import Channel
from bot.errors import DeliveryFailed, DeliveryRetry
from bot.events import ErrorEvent
from bot.journal import Journal
from bot.store import OutboxRow, QuarantineItem, Store
from bot.wakeups import wait_set

log = structlog.get_logger("opsgate.outbox")

_MAX_DELAY = 600.0
_BATCH = 20
LEASE_SECONDS = 120.0
# Well inside the lease, so a hung delivery is abandoned before another dispatcher may claim the row again.
DELIVERY_TIMEOUT = 50.0
MAX_ATTEMPTS = 8


def backoff(attempts: int) -> float:
    """1, 2, 4, … seconds with jitter, at most ten minutes."""
    return min(2.0 ** attempts, _MAX_DELAY) * (1 + random.random() / 4)


class OutboxDispatcher:
    """One loop per channel that delivers, in order of creation, the rows due for it."""

    def __init__(
        self, store: Store, journal: Journal, channels: list[Channel], poll_interval: float,
        max_attempts: int = MAX_ATTEMPTS, delivery_timeout: float = DELIVERY_TIMEOUT,
    ) -> None:
        self.store = store
        self.journal = journal
        self.channels = channels
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.delivery_timeout = delivery_timeout
        self.wakeup = journal.outbox_ready

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for channel in self.channels:
                if type(channel).deliver is not Channel.deliver:
                    group.create_task(self._loop(channel), name=f"outbox-{channel.name}")

    async def _loop(self, channel: Channel) -> None:
        while True:
            try:
                rows = await self.store.claim_outbox(channel.name, _BATCH, lease_seconds=LEASE_SECONDS)
            except Exception:
                log.exception("outbox_claim_failed", channel=channel.name)
                rows = []
            for row in rows:
                try:
                    await self.deliver(channel, row)
                except Exception:  # recording the outcome failed (database down): the lease expires, it comes back
                    log.exception("outbox_record_failed", channel=channel.name, row=row.id)
            if len(rows) < _BATCH:
                await wait_set(self.wakeup, self.poll_interval)
                self.wakeup.clear()

    async def deliver(self, channel: Channel, row: OutboxRow) -> None:
        """Deliver one row and record the outcome."""
        if row.problem is not None:
            await self._give_up(channel, row, "unreadable payload", row.problem, "the stored message is unreadable")
            return
        try:
            with telemetry.delivery(channel.name, row):
                async with asyncio.timeout(self.delivery_timeout):
                    await channel.deliver(row)
        except DeliveryRetry as exc:
            delay = exc.retry_after if exc.retry_after is not None else backoff(row.attempts)
            log.warning("outbox_retry", channel=channel.name, row=row.id, error=str(exc), retry_in_s=delay)
            await self.store.outbox_retry(row.id, delay, str(exc))
        except DeliveryFailed as exc:
            await self._give_up(channel, row, "refused by the channel", str(exc), str(exc))
        except Exception as exc:  # unknown failure: keep the message and try again later, up to max_attempts
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if isinstance(exc, TimeoutError):
                error = f"delivery took longer than {self.delivery_timeout:g} s"
            attempt = row.attempts + 1  # row.attempts counts the earlier claims, not this one
            log.exception("outbox_error", channel=channel.name, row=row.id, attempt=attempt)
            if attempt >= self.max_attempts:
                # The exception is ours, not the person's business: the thread gets where to look, not the trace.
                failures = f"{attempt} unexpected failure{'s' if attempt > 1 else ''}"
                await self._give_up(channel, row, f"gave up after {failures}", error, f"gave up after {failures}")
            else:
                await self.store.outbox_retry(row.id, backoff(row.attempts), error)
        else:
            await self.store.outbox_sent(row.id)
            log.info("outbox_sent", channel=channel.name, row=row.id, thread_id=row.thread_id)

    async def _give_up(self, channel: Channel, row: OutboxRow, reason: str, error: str, public: str) -> None:
        """Quarantine the row, mark it failed and tell its thread (``public``); the rows after it go on."""
        log.error("outbox_failed", channel=channel.name, row=row.id, reason=reason, error=error)
        payload = str(row.payload)[:2000] if row.payload else "(unreadable)"
        await self.store.quarantine(QuarantineItem(
            channel=channel.name, key=f"outbox:{row.id}", reason=f"outbox delivery: {reason}",
            detail=f"{error}\nthread: {row.thread_id or '-'}\npayload: {payload}", attempts=row.attempts + 1,
        ))
        await self.store.outbox_failed(row.id, error)
        if row.thread_id is not None:
            message = f"{channel.name} delivery failed: {public} (quarantined as outbox:{row.id})"
            await self.journal.append_independent(row.thread_id, [ErrorEvent(kind="delivery", message=message)])
