"""Threads this process made runnable, handed to its worker in memory so it does not have to poll for them.

The database stays the truth: a handed-off thread is still claimed with a lease (``Store.claim_one``), and what
never gets handed off (another process's work, a full queue, a crash) is found by the worker's periodic poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from bot.thread import Thread

_MAX_QUEUED = 10_000  # beyond this the oldest are dropped: the poll finds them, memory stays bounded


class Runnable:
    """A bounded queue of runnable threads (as committed) and an event to wake the worker."""

    def __init__(self, limit: int = _MAX_QUEUED) -> None:
        self._threads: deque[Thread] = deque(maxlen=limit)
        self._ready = asyncio.Event()

    def offer(self, thread: Thread) -> None:
        """A commit of this process left ``thread`` running: let the worker take it."""
        self._threads.append(thread)
        self._ready.set()

    def take(self) -> Thread | None:
        """The oldest handed-off thread, or None."""
        return self._threads.popleft() if self._threads else None

    def __len__(self) -> int:
        return len(self._threads)

    async def wait(self, seconds: float) -> None:
        """Until something is offered or ``seconds`` passed."""
        if not self._threads:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), seconds)
        self._ready.clear()
