"""An in-process runtime with its loops running, and waiting for one of its threads to reach a status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.config import load_settings
from bot.runtime import Loops, Runtime
from bot.thread import Thread
from bot.wiring import build_runtime, prepare_database


@asynccontextmanager
async def running(url: str, **env: str) -> AsyncIterator[Runtime]:
    """The real runtime on ``url`` with its loops (worker, timers, outbox) running; fast polling, one model retry
    unless ``env`` says otherwise."""
    settings = load_settings({"DATABASE_URL": url, "OPSGATE_POLL_INTERVAL": "0.05", "OPSGATE_MODEL_RETRIES": "1",
                              **env})
    await prepare_database(settings)
    runtime = build_runtime(settings, channels=[])
    loops = Loops()
    loops.start(runtime.loops())
    try:
        yield runtime
    finally:
        await loops.stop()
        await runtime.aclose()


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
