"""Timer migrations on both backends: 0010 (integer ids, closed rows dropped), 0011 (one approval timer a request)."""

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


async def test_a_requests_approval_timers_become_one_due_at_the_earliest(database_url: str) -> None:
    """0011: a request's pending expiry, reminder and escalation timers become one ``approval`` timer due at the
    earliest; other kinds, other requests and failed timers are left as they were."""
    await upgrade(database_url, "0010")
    rows = [
        ("t1", "approval_expiry", "r1", 3000.0, "{}", "pending"),
        ("t1", "approval_reminder", "r1", 1000.0, '{"number": 2}', "pending"),
        ("t1", "approval_escalation", "r1", 1500.0, "{}", "pending"),
        ("t2", "approval_expiry", "r2", 2500.0, "{}", "pending"),
        ("t2", "approval_reminder", "r2", 900.0, "{}", "failed"),
        ("t2", "note", "n", 100.0, "{}", "pending"),
    ]
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            for thread_id, kind, key, due_at, payload, status in rows:
                await conn.execute(text(
                    "INSERT INTO timers (thread_id, kind, key, due_at, payload, status, attempts) VALUES"
                    " (:thread, :kind, :key, :due, :payload, :status, 0)"),
                    {"thread": thread_id, "kind": kind, "key": key, "due": due_at, "payload": payload,
                     "status": status})
    finally:
        await engine.dispose()
    await upgrade(database_url)
    store = SqlStore.from_url(database_url)
    try:
        found = [(t.thread_id, t.kind, t.key, t.due_at.timestamp(), t.payload, t.status)
                 for thread_id in ("t1", "t2") for t in await store.list_timers(thread_id)]
    finally:
        await store.close()
    assert found == [
        ("t1", "approval", "r1", 1000.0, {}, "pending"),
        ("t2", "note", "n", 100.0, {}, "pending"),
        ("t2", "approval_reminder", "r2", 900.0, {}, "failed"),
        ("t2", "approval", "r2", 2500.0, {}, "pending"),
    ]
