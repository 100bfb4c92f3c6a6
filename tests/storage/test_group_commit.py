"""Group commit on SQLite and PostgreSQL: concurrent writes share a transaction, yet each succeeds or fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable
from typing import Any

from bot.errors import Conflict, DuplicateRef
from bot.events import Done, new_id
from bot.store import OutboxItem, Ref
from storage import SqlStore
from storage.database import sqlite_path
from storage.pg_store import PgHot
from storage.sqlite_store import SqliteHot
from tests.storage.test_sql_store import create, new_thread


def _hold_write_lock(store: SqlStore) -> sqlite3.Connection | None:
    """On SQLite, another connection taking the write lock (as a CLI command or another process would)."""
    if not isinstance(store.hot, SqliteHot):
        return None
    holder = sqlite3.connect(sqlite_path(_url_of(store)), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


async def queued(store: SqlStore, *writes: Awaitable[Any]) -> list[Any]:
    """Start every write in the same loop turn, then collect each outcome. On SQLite they are asked for while
    another connection holds the write lock, so they wait on the writer thread and commit together after it; on
    PostgreSQL the committers take everything queued in one loop turn."""
    holder = _hold_write_lock(store)
    try:
        tasks = [asyncio.ensure_future(w) for w in writes]
        await asyncio.sleep(0.05)  # all asked for (and on SQLite handed to the writer thread, which waits)
    finally:
        if holder is not None:
            holder.execute("COMMIT")
            holder.close()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_conflicting_write_among_good_ones_fails_alone(store: SqlStore) -> None:
    """Ten appends, one with a stale seq and one with a known ref, in one transaction: only those two fail."""
    threads = [await create(store) for _ in range(10)]
    await store.put_ref(Ref(channel="slack", key="ev-known", thread_id=threads[0].id))
    before = store.hot.writer.transactions
    writes = []
    for i, thread in enumerate(threads):
        expected = 1 if i == 3 else 2  # thread 3: stale
        refs = [Ref(channel="slack", key="ev-known" if i == 6 else f"ev-{i}")]
        writes.append(store.append(
            thread.id, [Done(message=f"done {i}")], expected_seq=expected, status="done", agent="deploy",
            refs=refs, outbox=[OutboxItem(channel="web", payload={"n": i})],
        ))
    outcomes = await queued(store, *writes)
    assert isinstance(outcomes[3], Conflict) and isinstance(outcomes[6], DuplicateRef), outcomes
    assert not any(isinstance(o, Exception) for i, o in enumerate(outcomes) if i not in (3, 6)), outcomes
    # Grouped: one transaction for all ten (PostgreSQL: one, or a few with several committers).
    grouped = store.hot.writer.transactions - before
    assert (grouped == 1) if isinstance(store.hot, SqliteHot) else (grouped <= 3), grouped
    if isinstance(store.hot, PgHot):  # the batch ran without savepoints first, then again with one per write
        assert store.hot.writer.retried >= 1
    for i, thread in enumerate(threads):
        loaded = await store.load_thread(thread.id)
        assert loaded is not None
        assert len(loaded.events) == (2 if i in (3, 6) else 3), i  # the failed ones wrote nothing
        assert (await store.get_ref("slack", f"ev-{i}") is None) == (i in (3, 6)), i
    rows = await store.claim_outbox("web", 20, lease_seconds=60)
    assert sorted(r.payload["n"] for r in rows) == [0, 1, 2, 4, 5, 7, 8, 9]


async def test_grouped_creates_with_a_duplicate_ref_and_an_existing_id(store: SqlStore) -> None:
    """Creates sharing a transaction: a duplicate event ref and a reused thread id fail; the rest are stored."""
    existing = await create(store)
    fresh = [new_id() for _ in range(5)]
    threads = [new_thread(f"request {i}").model_copy(update={"id": tid}) for i, tid in enumerate(fresh)]
    clash = new_thread("reused id").model_copy(update={"id": existing.id})
    outcomes = await queued(
        store, *(store.create_thread(t, "running", refs=[Ref(channel="slack", key="same-event" if i in (1, 2)
                                                      else f"event-{i}")]) for i, t in enumerate(threads)),
        store.create_thread(clash, "running"),
    )
    failures = [type(o).__name__ for o in outcomes if isinstance(o, Exception)]
    assert failures.count("DuplicateRef") == 1 and len(failures) == 2, outcomes  # one of 1/2 and the clash
    stored = [await store.load_thread(t.id) for t in threads]
    assert sum(t is not None for t in stored) == 4
    original = await store.load_thread(existing.id)
    assert original is not None and original.events[0].model_dump() == existing.events[0].model_dump()


async def test_nothing_is_answered_before_its_commit(store: SqlStore) -> None:
    """A write's caller hears back only after the transaction is durable: a new connection sees it at once."""
    other = SqlStore.from_url(_url_of(store))
    try:
        for _ in range(20):
            thread = await create(store)
            assert await other.load_thread(thread.id) is not None
    finally:
        await other.close()


def _url_of(store: SqlStore) -> str:
    return store.engine.url.render_as_string(hide_password=False)


async def test_a_burst_of_independent_writes_is_grouped(store: SqlStore) -> None:
    """Many concurrent creates take far fewer transactions than operations, and all are stored."""
    ops = 50
    await create(store)  # warm up (PostgreSQL: the pool and committers exist)
    before_tx, before_ops = store.hot.writer.transactions, store.hot.writer.operations
    threads = await asyncio.gather(*(create(store) for _ in range(ops)))
    assert store.hot.writer.operations - before_ops == ops
    assert store.hot.writer.transactions - before_tx < ops
    if isinstance(store.hot, PgHot):  # nothing failed: no batch needed its savepoints
        assert store.hot.writer.retried == 0
    assert all([await store.load_thread(t.id) is not None for t in threads])
