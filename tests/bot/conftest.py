"""In-process opsgate for engine tests: the real runtime (store, engine, worker) on a SQLite file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from bot.config import load_settings
from bot.events import Via
from bot.runtime import Loops, Runtime
from bot.thread import Thread
from bot.wiring import build_runtime, prepare_database


@dataclass
class InProcess:
    """A started runtime with its worker loop; ``stop`` is a process going away."""

    runtime: Runtime
    loops: Loops = field(default_factory=Loops)
    stopped: bool = False

    async def start(self, text: str, user: str | None = "bob@example.com", channel: str = "api") -> str:
        """Start a thread as ``user``; returns its id."""
        thread = await self.runtime.service.start_thread(text, user=user, via=Via(channel=channel))
        return thread.id

    async def thread(self, thread_id: str) -> Thread:
        return await self.runtime.service.get_thread(thread_id)

    async def wait(self, thread_id: str, *statuses: str, timeout: float = 10.0) -> Thread:  # noqa: ASYNC109
        """Poll until the thread has one of ``statuses``; fail with its event types otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            thread = await self.thread(thread_id)
            if thread.status in statuses:
                return thread
            if time.monotonic() > deadline:
                raise AssertionError(f"thread is {thread.status}, wanted {statuses}: {[e.type for e in thread.events]}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.loops.stop()
            await self.runtime.aclose()


OpsgateFactory = Callable[..., Awaitable[InProcess]]


@asynccontextmanager
async def processes(database_url: str, model: bool = True) -> AsyncIterator[OpsgateFactory]:
    """Factory of started opsgate processes on one (prepared) database: ``await make(**env)``; all stopped after.

    Fast polling and one model retry per call unless ``env`` says otherwise; ``model=False`` builds them without
    a model client."""
    started: list[InProcess] = []

    async def make(**env: str) -> InProcess:
        settings = load_settings({
            "DATABASE_URL": database_url, "OPSGATE_POLL_INTERVAL": "0.05", "OPSGATE_MODEL_RETRIES": "1", **env,
        })
        instance = InProcess(build_runtime(settings, channels=[], model=model))
        instance.loops.start(instance.runtime.loops())
        started.append(instance)
        return instance

    try:
        yield make
    finally:
        for instance in started:
            await instance.stop()


@pytest.fixture
async def opsgate(sqlite_database_url: str) -> AsyncIterator[OpsgateFactory]:
    """Factory: ``await opsgate(**env)`` builds and starts opsgate on this test's SQLite file (several calls share
    the database)."""
    await prepare_database(load_settings({"DATABASE_URL": sqlite_database_url}))
    async with processes(sqlite_database_url) as make:
        yield make
