"""Waiting for a thread in an in-process runtime to reach a status (the runtime's loops run it)."""

from __future__ import annotations

import asyncio
import time

from bot.runtime import Runtime
from bot.thread import Thread


async def settled(runtime: Runtime, thread_id: str, *statuses: str, timeout: float = 15.0) -> Thread:  # noqa: ASYNC109
    """The thread once its status is one of ``statuses`` (none given: once it stops running); fails with its
    event types after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        thread = await runtime.service.get_thread(thread_id)
        if (thread.status in statuses) if statuses else thread.status != "running":
            return thread
        assert time.monotonic() < deadline, f"{thread.status}: {[e.type for e in thread.events]}"
        await asyncio.sleep(0.02)
