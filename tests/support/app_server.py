"""opsgate's whole app (routes, lifespan, loops) served by uvicorn on a real socket in the test's event loop.

In the test's loop (not a thread) so the test can reach the same runtime's store and service directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from bot.app import create_app
from bot.config import Settings
from bot.runtime import Runtime
from bot.wiring import build_runtime
from tests.support.servers import free_port


@asynccontextmanager
async def serving(settings: Settings, *, channels: bool = False) -> AsyncIterator[tuple[str, Runtime]]:
    """The base URL and the runtime of an app serving ``settings`` (with its configured channels when
    ``channels``); stopped, loops included, on exit."""
    runtime = build_runtime(settings) if channels else build_runtime(settings, channels=[])
    port = free_port()
    config = uvicorn.Config(create_app(settings, runtime), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", access_log=False, ws="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", runtime
    finally:
        server.should_exit = True
        await task
