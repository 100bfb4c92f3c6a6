"""Migration 0010 gives timers integer ids and drops closed rows, keeping pending and failed ones, on both backends."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.events import Done, UserMessage, new_id
from bot.store import TimerChanges
from bot.thread import Thread
from storage import SqlStore, upgrade

# Rows as 0007-0009 wrote them: random string ids, created_at, closed timers kept with their status.
OLD_ROWS = [
    ("p-late", "note", "k1", 2_000_000_000.0, '{"n": 2}', "pending", 0, None),
    ("p-due", "note", "k2", 1_700_000_000.0, "{}", "pending", 1, "RuntimeError: hiccup"),
    ("fired", "note", "k3", 1_600_000_000.0, "{}", "fired", 1, None),
    ("cancelled", "note", "k4", 1_600_000_100.0, "{}", "cancelled", 0, None),
    ("failed", "nobody", "k5", 1_600_000_200.0, "{}", "failed", 8, "no handler for timer kind 'nobody'"),
]


async def test_pending_and_failed_timers_survive_with_integer_ids_and_closed_ones_go(database_url: str) -> None:
    """After 0010 the pending timers are claimed and fired by id as before; fired/cancelled rows are gone."""
    await upgrade(database_url, "0009")
    store = SqlStore.from_url(database_url)
    thread = Thread(id=new_id(), events=[UserMessage(text="hello")])
    try:
        await store.create_thread(thread, "done")
    finally:
        await store.close()
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            for timer_id, kind, key, due_at, payload, status, attempts, error in OLD_ROWS:
                await conn.execute(text(
                    "INSERT INTO timers (id, thread_id, kind, key, due_at, payload, status, attempts, created_at,"
                    " last_error) VALUES (:id, :thread, :kind, :key, :due, :payload, :status, :attempts, 1.0,"
                    " :error)"), {"id": timer_id, "thread": thread.id, "kind": kind, "key": key, "due": due_at,
                                  "payload": payload, "status": status, "attempts": attempts, "error": error})
    finally:
        await engine.dispose()

    await upgrade(database_url)
    store = SqlStore.from_url(database_url)
    try:
        listed = await store.list_timers(thread.id)
        assert [(t.key, t.status, t.payload, t.attempts, t.last_error) for t in listed] == [
            ("k5", "failed", {}, 8, "no handler for timer kind 'nobody'"),
            ("k2", "pending", {}, 1, "RuntimeError: hiccup"),
            ("k1", "pending", {"n": 2}, 0, None),
        ]
        assert all(isinstance(t.id, int) for t in listed) and len({t.id for t in listed}) == 3
        [due] = await store.claim_timers("w1", 10, 30)
        assert (due.key, due.attempts, due.due_at.timestamp()) == ("k2", 1, 1_700_000_000.0)
        await store.append(thread.id, [Done(message="fired")], expected_seq=1, status="done", agent=None,
                           timers=TimerChanges(fired=due.id, schedule=[]))
        assert [t.key for t in await store.list_timers(thread.id)] == ["k5", "k1"]
        assert await store.next_timer_due() == 2_000_000_000.0
    finally:
        await store.close()
