"""Durable timers: future events of a thread (a reminder, an escalation, an expiry), kept in the database.

A timer is scheduled in the same transaction as the events that cause it (``Journal.append(..., timers=...)`` or
a ``Scheduler`` the journal asks on every commit), and fires by appending its handler's events to its thread in
the transaction that deletes its pending row, so it fires exactly once however many processes run
``TimerLoop``: a second firing of the same timer writes nothing (TimerGone). Fired and cancelled timers leave no
row (the thread's events say what they did); only failed ones stay, beside their quarantine entry. A timer due
while every process was down fires as soon as one starts. A handler that finds its timer stale (the approval was
decided meanwhile) returns no events: the timer is deleted and nothing is appended.

One clock: due times are wall-clock UTC (epoch seconds), set from the scheduling process's clock and compared
with the firing process's clock, the rule thread leases already follow; keep the hosts' clocks synchronised
(NTP): a skew of s seconds moves a timer by at most s.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from bot.errors import Conflict, TimerGone, new_error_id
from bot.events import Event
from bot.journal import Journal
from bot.store import NewTimer, QuarantineItem, Store, TimerChanges, TimerRow
from bot.thread import Thread

log = structlog.get_logger("opsgate.timers")

LEASE_SECONDS = 60.0
MAX_ATTEMPTS = 8
_BATCH = 100


@dataclass(frozen=True)
class Fired:
    """What firing a timer does: events to append (none: the timer was stale), timers to schedule or cancel."""

    events: Sequence[Event] = ()
    schedule: Sequence[NewTimer] = ()
    cancel: Sequence[str] = ()


Handler = Callable[[Thread, TimerRow], Awaitable[Fired]]


@dataclass
class TimerHandlers:
    """The handler for each timer kind; agents and the core register theirs when the runtime is built."""

    handlers: dict[str, Handler] = field(default_factory=dict)

    def register(self, kind: str, handler: Handler) -> None:
        """Fire timers of ``kind`` with ``handler``; a kind has one handler."""
        if kind in self.handlers:
            raise ValueError(f"timer kind {kind!r} already has a handler")
        self.handlers[kind] = handler

    def get(self, kind: str) -> Handler | None:
        return self.handlers.get(kind)


def schedule(kind: str, due_at: datetime | timedelta, *, key: str = "", payload: dict[str, object] | None = None,
             now: datetime | None = None) -> NewTimer:
    """A timer of ``kind`` due at ``due_at`` (or that long from now), to pass in an append's ``TimerChanges``."""
    if isinstance(due_at, timedelta):
        due_at = (now or datetime.now(UTC)) + due_at
    return NewTimer(kind=kind, due_at=due_at, key=key, payload=dict(payload or {}))


def retry_delay(attempts: int) -> float:
    """2, 4, 8, … seconds with jitter, at most five minutes: a handler that failed (the database, a bug)."""
    return min(2.0 ** (attempts + 1), 300.0) * (1 + random.random() / 4)


class TimerLoop:
    """Fires due timers through their handlers until cancelled; any number may run, in any processes."""

    def __init__(
        self, store: Store, journal: Journal, handlers: TimerHandlers, poll_interval: float,
        *, batch: int = _BATCH, lease_seconds: float = LEASE_SECONDS, max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.store = store
        self.journal = journal
        self.handlers = handlers
        self.poll_interval = poll_interval
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.owner = f"{socket.gethostname()[:64]}:{os.getpid()}:timers:{id(self):x}"
        self.wakeup = journal.timers_ready
        self.fired = 0  # timers whose events this loop appended (for tests and benchmarks)

    async def run(self) -> None:
        """Fire what is due, then sleep until the next due time, a poll interval, or a new timer of ours."""
        while True:
            try:
                claimed = await self.fire_due()
            except Exception:
                log.exception("timer_claim_failed")
                claimed = 0
            if claimed >= self.batch:
                continue  # more may be due already
            await self._sleep()

    async def _sleep(self) -> None:
        wait = self.poll_interval
        with contextlib.suppress(Exception):
            due = await self.store.next_timer_due()
            if due is not None:
                wait = min(wait, max(0.0, due - time.time()))
        if wait > 0:
            await self.wakeup.sleep(wait)
        else:
            self.wakeup.event.clear()

    async def fire_due(self) -> int:
        """Claim the timers due now and fire each; how many were claimed."""
        timers = await self.store.claim_timers(self.owner, self.batch, self.lease_seconds)
        for timer in timers:
            await self.fire(timer)
        return len(timers)

    async def fire(self, timer: TimerRow) -> bool:
        """Fire one claimed timer; True when its events were appended (by this call)."""
        handler = self.handlers.get(timer.kind)
        if handler is None:
            await self._give_up(timer, f"no handler for timer kind {timer.kind!r}")
            return False
        try:
            return await self._fire(timer, handler)
        except TimerGone:  # fired by another worker, or cancelled, meanwhile
            return False
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if timer.attempts + 1 >= self.max_attempts:
                log.exception("timer_failed", timer_id=timer.id, kind=timer.kind, thread_id=timer.thread_id)
                await self._give_up(timer, f"handler failed {timer.attempts + 1} times; last: {error}")
            else:
                delay = retry_delay(timer.attempts)
                log.exception("timer_retry", timer_id=timer.id, kind=timer.kind, retry_in_s=delay)
                with contextlib.suppress(Exception):  # else its lease runs out and it comes back all the same
                    await self.store.timer_retry(timer.id, delay, error)
            return False

    async def _fire(self, timer: TimerRow, handler: Handler) -> bool:
        for _ in range(20):
            thread = await self.store.load_thread(timer.thread_id)
            if thread is None:
                await self._give_up(timer, f"thread {timer.thread_id} does not exist")
                return False
            fired = await handler(thread, timer)
            if not (fired.events or fired.schedule or fired.cancel):
                await self.store.timer_done(timer.id)
                log.info("timer_stale", timer_id=timer.id, kind=timer.kind, thread_id=timer.thread_id)
                return False
            changes = TimerChanges(schedule=list(fired.schedule), cancel=list(fired.cancel), fired=timer.id)
            try:
                await self.journal.append(thread, fired.events, timers=changes)
            except Conflict:
                continue  # the thread changed meanwhile (a decision?): ask the handler again
            self.fired += 1
            late = time.time() - timer.due_at.timestamp()
            log.info("timer_fired", timer_id=timer.id, kind=timer.kind, thread_id=timer.thread_id,
                     late_ms=int(late * 1000))
            return True
        raise Conflict(f"thread {timer.thread_id} kept changing while timer {timer.id} fired")

    async def _give_up(self, timer: TimerRow, reason: str) -> None:
        error_id = new_error_id()
        log.error("timer_given_up", timer_id=timer.id, kind=timer.kind, thread_id=timer.thread_id, reason=reason,
                  error_id=error_id)
        # Quarantined first (idempotent by key): a timer marked failed is always in the quarantine, even after a
        # crash between the two writes (then it is simply given up again).
        await self.store.quarantine(QuarantineItem(
            channel="timers", key=f"timer:{timer.id}", reason="timer could not fire",
            detail=f"error id {error_id}: {reason}\nthread: {timer.thread_id}\nkind: {timer.kind}",
            attempts=timer.attempts + 1,
        ))
        await self.store.timer_failed(timer.id, reason)
