"""Delivering outbox rows through their channels, with backoff; nothing is lost while a channel is down."""

from __future__ import annotations

import asyncio
import contextlib
import random

import structlog

from bot import telemetry
from bot.channel import Channel
from bot.errors import DeliveryFailed, DeliveryRetry
from bot.events import ErrorEvent
from bot.journal import Journal
from bot.store import OutboxRow, Store

log = structlog.get_logger("opsgate.outbox")

_MAX_DELAY = 600.0
_BATCH = 20


def backoff(attempts: int) -> float:
    """1, 2, 4, … seconds with jitter, at most ten minutes."""
    return min(2.0 ** attempts, _MAX_DELAY) * (1 + random.random() / 4)


class OutboxDispatcher:
    """One loop per channel that delivers, in order of creation, the rows due for it."""

    def __init__(self, store: Store, journal: Journal, channels: list[Channel], poll_interval: float) -> None:
        self.store = store
        self.journal = journal
        self.channels = channels
        self.poll_interval = poll_interval
        self.wakeup = journal.outbox_ready

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for channel in self.channels:
                if type(channel).deliver is not Channel.deliver:
                    group.create_task(self._loop(channel), name=f"outbox-{channel.name}")

    async def _loop(self, channel: Channel) -> None:
        while True:
            try:
                rows = await self.store.claim_outbox(channel.name, _BATCH, lease_seconds=120)
            except Exception:
                log.exception("outbox_claim_failed", channel=channel.name)
                rows = []
            for row in rows:
                await self.deliver(channel, row)
            if len(rows) < _BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), self.poll_interval)
                self.wakeup.clear()

    async def deliver(self, channel: Channel, row: OutboxRow) -> None:
        """Deliver one row and record the outcome."""
        try:
            with telemetry.delivery(channel.name, row):
                await channel.deliver(row)
        except DeliveryRetry as exc:
            delay = exc.retry_after if exc.retry_after is not None else backoff(row.attempts)
            log.warning("outbox_retry", channel=channel.name, row=row.id, error=str(exc), retry_in_s=delay)
            await self.store.outbox_retry(row.id, delay, str(exc))
        except DeliveryFailed as exc:
            log.error("outbox_failed", channel=channel.name, row=row.id, error=str(exc))
            await self.store.outbox_failed(row.id, str(exc))
            await self._record_failure(row, f"{channel.name} delivery failed: {exc}")
        except Exception as exc:  # unknown failure: keep the message and try again later
            log.exception("outbox_error", channel=channel.name, row=row.id)
            await self.store.outbox_retry(row.id, backoff(row.attempts), f"{type(exc).__name__}: {exc}")
        else:
            await self.store.outbox_sent(row.id)
            log.info("outbox_sent", channel=channel.name, row=row.id, thread_id=row.thread_id)

    async def _record_failure(self, row: OutboxRow, message: str) -> None:
        if row.thread_id is not None:
            await self.journal.append_independent(row.thread_id, [ErrorEvent(kind="delivery", message=message)])
