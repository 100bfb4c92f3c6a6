"""Runnable work is handed to this process's worker in memory (leased in the commit that made it runnable);
the database is polled only on the interval, for other processes' work."""

from __future__ import annotations

import asyncio
import time

from bot.config import load_settings
from bot.events import Via
from bot.runtime import Loops
from bot.store import Lease
from bot.wiring import build_runtime
from storage import upgrade
from tests.bot.test_engine import model_env
from tests.support.model_server import ScriptedModelServer, tool_call


async def test_threads_made_runnable_here_run_without_waiting_for_the_poll(
    database_url: str, model_server: ScriptedModelServer
) -> None:
    """With a 60 s poll interval, started threads and decided approvals still run at once (handed over), and a
    thread another process made runnable waits for the poll."""
    model_server.responder = lambda _: tool_call("done_for_now", message="ok")
    await upgrade(database_url)
    settings = load_settings({"DATABASE_URL": database_url, "OPSGATE_POLL_INTERVAL": "60",
                              **model_env(model_server)})
    here, elsewhere = build_runtime(settings, channels=[]), build_runtime(settings, channels=[])
    loops = Loops()
    try:
        loops.start(here.loops())
        await asyncio.sleep(0.2)  # the worker's first poll (at start) found nothing; the next is in 60 s
        began = time.monotonic()
        threads = await asyncio.gather(*(
            here.service.start_thread(f"question {n}", user="bob", via=Via(channel="api")) for n in range(10)))
        for thread in threads:
            while (await here.service.get_thread(thread.id)).status != "done":
                assert time.monotonic() - began < 20, "a handed-over thread waited for the poll"
                await asyncio.sleep(0.02)
        # Made runnable by another process (no worker there): nothing tells this worker until its next poll.
        other = await elsewhere.service.start_thread("from elsewhere", user="bob", via=Via(channel="api"))
        await asyncio.sleep(1.0)
        assert (await here.service.get_thread(other.id)).status == "running"
    finally:
        await loops.stop()
        await here.aclose()
        await elsewhere.aclose()


async def test_a_handed_thread_left_waiting_past_a_third_of_its_lease_is_renewed_or_skipped(
    database_url: str,
) -> None:
    """A thread its commit leased to this worker, still queued after lease/3, runs only if renewing the lease
    works; one another worker took meanwhile is skipped (never run twice)."""
    await upgrade(database_url)
    settings = load_settings({"DATABASE_URL": database_url, "OPSGATE_LEASE_SECONDS": "3"})
    runtime = build_runtime(settings, channels=[], model=False)
    worker = runtime.worker
    runtime.journal.runnable.lease = Lease(owner=worker.owner, seconds=3)  # as while the worker loop runs
    try:
        kept = await runtime.service.start_thread("kept", user="bob", via=Via(channel="api"))
        taken = await runtime.service.start_thread("taken", user="bob", via=Via(channel="api"))
        assert len(runtime.journal.runnable) == 2
        await asyncio.sleep(1.2)  # more than a third of the lease
        await runtime.store.release_thread(taken.id, worker.owner)  # as if it expired and someone else came:
        assert await runtime.store.claim_one(taken.id, "another-worker", 60) is not None
        assert await worker._claim(1) == [(kept.id, None)]  # renewed; reloaded since time has passed
        assert await worker._claim(8) == []  # taken: skipped; and the poll finds nothing free either
        assert await runtime.store.renew_lease(kept.id, worker.owner, 3)
    finally:
        await runtime.aclose()


async def test_one_claim_takes_handed_threads_up_to_its_limit(database_url: str) -> None:
    """Free slots are filled from the hand-over queue first; what does not fit stays queued for the next claim."""
    await upgrade(database_url)
    runtime = build_runtime(load_settings({"DATABASE_URL": database_url}), channels=[], model=False)
    worker = runtime.worker
    runtime.journal.runnable.lease = Lease(owner=worker.owner, seconds=60)
    try:
        threads = [await runtime.service.start_thread(f"request {n}", user="bob", via=Via(channel="api"))
                   for n in range(3)]
        first = await worker._claim(2)
        assert len(first) == 2 and all(known is not None and known.id == thread_id for thread_id, known in first)
        assert len(runtime.journal.runnable) == 1
        rest = await worker._claim(8)
        assert {thread_id for thread_id, _ in first + rest} == {thread.id for thread in threads}
    finally:
        await runtime.aclose()
