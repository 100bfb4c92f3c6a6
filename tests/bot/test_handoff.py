"""Runnable work is handed to this process's worker in memory (leased in the commit that made it runnable);
the database is polled only on the interval, for other processes' work."""

from __future__ import annotations

import asyncio
import time

from bot.config import load_settings
from bot.events import Via
from bot.runtime import Loops
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
