"""Threads this process made runnable, handed to its worker in memory so it does not have to poll for them.

The database stays the truth: a handed-off thread is leased to the worker, in the very commit that made it
runnable when the worker is running (``lease``), else by id (``Store.claim_one``); what never gets handed off
(another process's work, a full queue, a crash) is found by the worker's periodic poll.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from bot.store import Lease
from bot.thread import Thread
from bot.wakeups import wait_set

# Beyond this the oldest are dropped and memory stays bounded: the poll finds them (a dropped thread its commit
# leased to us waits for that lease to run out first).
_MAX_QUEUED = 10_000


@dataclass(frozen=True, slots=True)
class Handed:
    """A thread as committed, whether that commit already leased it to the worker, and when."""

    thread: Thread
    leased: bool
    at: float


class Runnable:
    """A bounded queue of runnable threads (as committed) and an event to wake the worker."""

    def __init__(self, limit: int = _MAX_QUEUED) -> None:
        self._threads: deque[Handed] = deque(maxlen=limit)
        self._ready = asyncio.Event()
        self.lease: Lease | None = None  # set while this process's worker runs: commits lease threads to it

    def offer(self, thread: Thread, *, leased: bool) -> None:
        """A commit of this process left ``thread`` running (and leased it to the worker, or not)."""
        self._threads.append(Handed(thread, leased, time.monotonic()))
        self._ready.set()

    def take(self) -> Handed | None:
        """The oldest handed-off thread, or None."""
        return self._threads.popleft() if self._threads else None

    def __len__(self) -> int:
        return len(self._threads)

    async def wait(self, seconds: float) -> None:
        """Until something is offered or ``seconds`` passed."""
        if not self._threads:
            await wait_set(self._ready, seconds)
        self._ready.clear()
