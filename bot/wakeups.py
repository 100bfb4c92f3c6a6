"""Sleeping until an event is set or a time has passed, without ever swallowing a cancellation.

Every loop (worker, outbox, timers, the Slack inbox) sleeps this way between rounds. ``asyncio.wait_for`` is not
used for it: on Python 3.11, when the task is cancelled just as the event is set, ``wait_for`` returns normally
and the cancellation is lost (python/cpython#86296, fixed in 3.12), so the loop runs on and whoever stops it
waits forever (seen as a shutdown hang in the tests, about one run in ten). ``asyncio.timeout`` tells its own
cancellation from a caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set (True) or ``seconds`` passed (False); a cancellation always propagates."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
            return True
    return False


class Alarm:
    """An event for a sleeper that knows when it wakes next: ``ring(at)`` wakes it only for something earlier.

    The timer loop sleeps until its next due timer (or its poll interval). Every approval request schedules a
    timer an hour or more away; waking the loop for each cost two reads per launch for nothing. While the
    sleeper is not asleep (``until`` is infinite), every ring counts, so nothing scheduled while it looks at the
    database is missed.
    """

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.until = math.inf  # when the sleeper wakes on its own; infinite while it is awake

    def ring(self, at: float | None = None) -> None:
        """Wake the sleeper if ``at`` (epoch seconds; None: now) comes before it would wake anyway."""
        if at is None or at < self.until:
            self.event.set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` unless rung for an earlier time (True); awake (every ring counts) afterwards."""
        self.until = time.time() + seconds
        try:
            return await wait_set(self.event, seconds)
        finally:
            self.until = math.inf
            self.event.clear()
