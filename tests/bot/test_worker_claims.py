"""A worker fills its free slots from the database in one claim, never more threads than it has slots for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.events import AgentSelected, UserMessage, Via, new_id
from bot.thread import Thread
from storage.migrate import upgrade
from tests.bot.conftest import InProcess, processes


@pytest.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    await upgrade(database_url)
    yield database_url


async def _worker_claiming(database_url: str, concurrency: int) -> AsyncIterator[tuple[InProcess, list[int]]]:
    async with processes(database_url, model=False) as make:
        # A long poll interval: threads another process makes runnable are found by the next poll, all at once.
        app = await make(OPSGATE_WORKER_CONCURRENCY=str(concurrency), OPSGATE_POLL_INTERVAL="1")
        sizes: list[int] = []
        claim = app.runtime.store.claim_threads

        async def counted(owner: str, lease_seconds: float, limit: int = 1) -> list[str]:
            claimed = await claim(owner, lease_seconds, limit)
            assert len(claimed) <= limit
            sizes.append(len(claimed))
            return claimed

        app.runtime.store.claim_threads = counted  # type: ignore[method-assign]
        yield app, sizes


async def _another_process_makes_runnable(app: InProcess, n: int) -> list[str]:
    """N threads made runnable as another process would: in the database, not handed to this worker."""
    threads = [Thread(id=new_id(), agent="deploy", events=[
        UserMessage(text="!help", user="bob", via=Via(channel="api")), AgentSelected(agent="deploy")])
        for _ in range(n)]
    await asyncio.gather(*(app.runtime.store.create_thread(thread, "running") for thread in threads))
    return [thread.id for thread in threads]


async def test_a_backlog_is_claimed_in_one_round_trip(fresh_database: str) -> None:
    async for app, sizes in _worker_claiming(fresh_database, concurrency=8):
        ids = await _another_process_makes_runnable(app, 8)
        for thread_id in ids:
            assert (await app.wait(thread_id, "done", timeout=10)).status == "done"
        taken = [size for size in sizes if size]
        assert sum(taken) == 8
        # One poll found all eight (two if the poll fell while they were being written); one claim per slot
        # would have been eight claims.
        assert len(taken) <= 2 and max(taken) >= 4


async def test_a_claim_never_takes_more_threads_than_free_slots(fresh_database: str) -> None:
    async for app, sizes in _worker_claiming(fresh_database, concurrency=3):
        ids = await _another_process_makes_runnable(app, 10)
        for thread_id in ids:
            assert (await app.wait(thread_id, "done", timeout=10)).status == "done"
        assert sum(sizes) == 10 and max(sizes) == 3
