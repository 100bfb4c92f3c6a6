"""A thread whose step keeps failing is poison: it stops as failed with an error id and is quarantined.

The failure is real: the thread belongs to an agent that is no longer registered (removed in an upgrade), so
every step raises. Other threads go on meanwhile.
"""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from bot.events import AgentSelected, ErrorEvent, UserMessage, Via, new_id
from bot.thread import Thread
from tests.bot.conftest import OpsgateFactory
from tests.support.databases import move_table_away


async def test_a_thread_failing_every_step_is_stopped_and_quarantined(opsgate: OpsgateFactory) -> None:
    """Two failures in a row (the setting) fail the thread with an error id; a good thread is answered meanwhile."""
    app = await opsgate(OPSGATE_THREAD_MAX_FAILURES="2")
    poison = Thread(id=new_id(), agent="retired",
                    events=[UserMessage(text="!help", user="bob"), AgentSelected(agent="retired")])
    with capture_logs() as logs:
        await app.runtime.store.create_thread(poison, "running")
        app.runtime.journal.runnable.offer(poison, leased=False)  # as if our own commit made it runnable
        good = await app.start("!help")
        assert (await app.wait(good, "done")).status == "done"
        started = time.monotonic()
        stopped = await app.wait(poison.id, "failed", timeout=15)
    assert time.monotonic() - started < 15
    error = stopped.events[-1]
    assert isinstance(error, ErrorEvent) and error.kind == "internal"
    assert "internal error (error id" in error.message and "UnknownAgent" not in error.message
    [item] = await app.runtime.store.list_quarantine()
    assert item.channel == "worker" and item.key.startswith(f"thread:{poison.id}:")
    assert item.attempts == 2 and "UnknownAgent" in (item.detail or "")
    [gave_up] = [r for r in logs if r.get("gave_up")]
    assert gave_up["error_id"] in error.message and item.key.endswith(gave_up["error_id"])


async def test_a_new_message_starts_a_stopped_thread_again(opsgate: OpsgateFactory) -> None:
    """After the stop, the thread is failed, not stuck: a person's message makes it runnable again."""
    app = await opsgate(OPSGATE_THREAD_MAX_FAILURES="1")
    poison = Thread(id=new_id(), agent="retired",
                    events=[UserMessage(text="!help", user="bob"), AgentSelected(agent="retired")])
    await app.runtime.store.create_thread(poison, "running")
    app.runtime.journal.runnable.offer(poison, leased=False)
    await app.wait(poison.id, "failed")
    thread = await app.runtime.service.add_message(poison.id, "!help", user="bob", via=Via(channel="api"))
    assert thread.status == "running"
    stopped = await app.wait(poison.id, "failed")
    assert [e.type for e in stopped.events].count("error") == 2


async def test_a_thread_is_never_failed_without_its_quarantine_entry(opsgate: OpsgateFactory) -> None:
    """The quarantine is written first: when it cannot be, the thread is not shown as failed, it is retried."""
    app = await opsgate(OPSGATE_THREAD_MAX_FAILURES="1")
    await move_table_away(app.runtime.store.engine, "quarantine")  # the operators' table is gone: that write fails
    poison = Thread(id=new_id(), agent="retired",
                    events=[UserMessage(text="!help", user="bob"), AgentSelected(agent="retired")])
    with capture_logs() as logs:
        await app.runtime.store.create_thread(poison, "running")
        app.runtime.journal.runnable.offer(poison, leased=False)
        deadline = time.monotonic() + 10
        while not any(r["event"] == "give_up_failed" for r in logs):
            assert time.monotonic() < deadline, "the worker never tried to give up"
            await asyncio.sleep(0.02)
    thread = await app.thread(poison.id)
    assert thread.status != "failed" and not [e for e in thread.events if isinstance(e, ErrorEvent)]
