"""The timer loop: due timers fire through their handlers exactly once, across workers and restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import load_settings
from bot.events import Done, UserMessage, new_id
from bot.runtime import Loops, Runtime
from bot.store import TimerChanges, TimerRow
from bot.thread import Thread
from bot.timers import Fired, TimerHandlers, schedule
from bot.wiring import build_runtime, prepare_database
from storage import upgrade

Start = Callable[..., Awaitable[Runtime]]


async def note(thread: Thread, timer: TimerRow) -> Fired:
    """A test handler: one Done event naming the timer, unless one is already there (then stale)."""
    text = f"timer {timer.key}"
    if any(isinstance(e, Done) and e.message == text for e in thread.events):
        return Fired()
    return Fired(events=[Done(message=text)])


@pytest.fixture
async def start(database_url: str) -> AsyncIterator[Start]:
    """Factory of started runtimes (worker and timer loops) on one database, like separate processes."""
    running: list[tuple[Runtime, Loops]] = []
    await upgrade(database_url)

    async def make(poll_interval: float = 0.2) -> Runtime:
        settings = load_settings({"DATABASE_URL": database_url, "OPSGATE_POLL_INTERVAL": str(poll_interval)})
        await prepare_database(settings)
        runtime = build_runtime(settings, channels=[])
        runtime.timer_handlers.register("note", note)
        loops = Loops()
        loops.start({"timers": runtime.timers.run})
        running.append((runtime, loops))
        return runtime

    yield make
    for runtime, loops in running:
        await loops.stop()
        await runtime.aclose()


async def _thread_with(runtime: Runtime, *timers: object) -> str:
    thread = Thread(id=new_id()).with_events([UserMessage(text="hello")])
    await runtime.journal.create(thread, timers=TimerChanges(schedule=list(timers)))  # type: ignore[arg-type]
    return thread.id


async def _notes(runtime: Runtime, thread_id: str) -> list[str]:
    thread = await runtime.store.load_thread(thread_id)
    assert thread is not None
    return [e.message for e in thread.events if isinstance(e, Done)]


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_schedule_builds_a_timer_from_a_delay_or_a_time() -> None:
    """schedule() takes a timedelta from now or an absolute time, with key and payload."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    timer = schedule("remind", timedelta(minutes=5), key="a1", payload={"n": 2}, now=now)
    expected = ("remind", now + timedelta(minutes=5), "a1", {"n": 2})
    assert (timer.kind, timer.due_at, timer.key, timer.payload) == expected
    assert schedule("x", now).due_at == now


def test_a_kind_has_one_handler() -> None:
    """Registering a second handler for a kind is a programming error, caught at start."""
    handlers = TimerHandlers()
    handlers.register("note", note)
    with pytest.raises(ValueError, match="already has a handler"):
        handlers.register("note", note)


async def test_a_timer_fires_at_its_due_time_and_only_then(start: Start) -> None:
    """A timer due in a second appends its handler's events after that second, once."""
    runtime = await start()
    began = time.time()
    thread_id = await _thread_with(runtime, schedule("note", timedelta(seconds=1), key="k"))
    assert await _notes(runtime, thread_id) == []

    async def fired() -> bool:
        return await _notes(runtime, thread_id) == ["timer k"]

    await _until(fired)
    thread = await runtime.store.load_thread(thread_id)
    assert thread is not None and thread.events[-1].at.timestamp() >= began + 1.0
    assert await runtime.store.list_timers(thread_id) == []  # a fired timer leaves no row


async def test_a_timer_due_before_the_loop_wakes_wakes_it_and_a_later_one_does_not(start: Start) -> None:
    """The loop sleeps a whole poll interval (60 s here) unless a commit schedules a timer due before that: such
    a timer fires on time; one due after it leaves the loop asleep (no database reads for it)."""
    runtime = await start(poll_interval=60)
    await asyncio.sleep(0.3)  # the loop has looked, found nothing, and sleeps for 60 s
    reads = 0
    looked = runtime.store.next_timer_due

    async def counted() -> float | None:
        nonlocal reads
        reads += 1
        return await looked()

    runtime.store.next_timer_due = counted  # type: ignore[method-assign]
    await _thread_with(runtime, schedule("note", timedelta(hours=2), key="later"))
    await asyncio.sleep(0.3)
    assert reads == 0  # an approval's expiry hours away does not wake it
    thread_id = await _thread_with(runtime, schedule("note", timedelta(seconds=1), key="soon"))

    async def fired() -> bool:
        return await _notes(runtime, thread_id) == ["timer soon"]

    await _until(fired, timeout=10)
    assert reads >= 1


async def test_two_workers_fire_each_timer_exactly_once(start: Start) -> None:
    """Two runtimes on one database (SQLite, PostgreSQL) share 60 due timers: every one fires exactly once."""
    first, second = await start(), await start()
    due = datetime.now(UTC) + timedelta(seconds=0.5)
    threads = [await _thread_with(first, *[schedule("note", due, key=f"{t}-{i}") for i in range(6)])
               for t in range(10)]

    async def all_fired() -> bool:
        return first.timers.fired + second.timers.fired >= 60

    await _until(all_fired)
    await asyncio.sleep(0.5)  # time for a duplicate firing to show up, if there were one
    for t, thread_id in enumerate(threads):
        assert sorted(await _notes(first, thread_id)) == sorted(f"timer {t}-{i}" for i in range(6))
    assert first.timers.fired + second.timers.fired == 60


async def test_a_timer_due_while_everything_was_down_fires_on_start(database_url: str, start: Start) -> None:
    """Scheduled by a process that then stops; due while nothing runs; the next process to start fires it."""
    settings = load_settings({"DATABASE_URL": database_url})
    await upgrade(database_url)
    stopped = build_runtime(settings, channels=[])  # never runs its loops
    thread_id = await _thread_with(stopped, schedule("note", timedelta(seconds=0.3), key="down"))
    await stopped.aclose()
    await asyncio.sleep(0.5)
    runtime = await start()

    async def fired() -> bool:
        return await _notes(runtime, thread_id) == ["timer down"]

    await _until(fired)
    await asyncio.sleep(0.5)  # a second firing would show up now
    assert await _notes(runtime, thread_id) == ["timer down"] and runtime.timers.fired == 1
    assert await runtime.store.list_timers(thread_id) == []


async def test_a_timer_claimed_by_a_process_that_died_fires_once_after_a_restart(
    database_url: str, start: Start,
) -> None:
    """A process claims a due timer and dies before firing it; once its lease runs out, a new one fires it once."""
    settings = load_settings({"DATABASE_URL": database_url})
    await upgrade(database_url)
    crashed = build_runtime(settings, channels=[])  # never runs its loops
    thread_id = await _thread_with(crashed, schedule("note", timedelta(0), key="crash"))
    [claimed] = await crashed.store.claim_timers("crashed", 10, lease_seconds=1.0)
    await crashed.aclose()  # it never fires what it claimed
    began = time.monotonic()
    runtime = await start()

    async def fired() -> bool:
        return await _notes(runtime, thread_id) == ["timer crash"]

    await _until(fired)
    assert time.monotonic() - began >= 0.5  # not before the dead process's lease ran out
    await asyncio.sleep(0.5)
    assert await _notes(runtime, thread_id) == ["timer crash"] and runtime.timers.fired == 1
    assert await runtime.store.list_timers(thread_id) == [] and claimed.key == "crash"


async def test_a_stale_timer_is_closed_without_events(start: Start) -> None:
    """A handler that finds nothing to do (its note is there already) closes the timer and appends nothing."""
    runtime = await start()
    thread = Thread(id=new_id()).with_events([UserMessage(text="hi"), Done(message="timer s")])
    await runtime.journal.create(thread, timers=TimerChanges(schedule=[schedule("note", timedelta(0), key="s")]))

    async def closed() -> bool:
        return await runtime.store.list_timers(thread.id) == []

    await _until(closed)
    assert await _notes(runtime, thread.id) == ["timer s"]
    assert runtime.timers.fired == 0


async def test_an_unknown_kind_is_failed_and_quarantined(start: Start) -> None:
    """A timer nobody handles is not retried forever: it is marked failed and set aside in the quarantine."""
    runtime = await start()
    thread_id = await _thread_with(runtime, schedule("nobody", timedelta(0), key="u"))

    async def failed() -> bool:
        return [t.status for t in await runtime.store.list_timers(thread_id)] == ["failed"]

    await _until(failed)
    quarantined = await runtime.store.list_quarantine()
    assert any(q.channel == "timers" and "no handler for timer kind 'nobody'" in (q.detail or "")
               for q in quarantined)


async def test_a_failing_handler_is_retried_until_it_succeeds(start: Start) -> None:
    """A handler that raises (a database hiccup) leaves the timer pending; a later attempt fires it once."""
    runtime = await start()
    calls: list[int] = []

    async def flaky(thread: Thread, timer: TimerRow) -> Fired:
        calls.append(timer.attempts)
        if len(calls) == 1:
            raise RuntimeError("hiccup")
        return await note(thread, timer)

    runtime.timer_handlers.register("flaky", flaky)
    thread_id = await _thread_with(runtime, schedule("flaky", timedelta(0), key="f"))

    async def fired() -> bool:
        return await _notes(runtime, thread_id) == ["timer f"]

    await _until(fired)
    assert calls == [0, 1]
    assert await runtime.store.list_timers(thread_id) == []
