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


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set (True) or ``seconds`` passed (False); a cancellation always propagates."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
            return True
    return False
