"""The list of threads: by status, or all of them merged from each status's newest (no index on updated_at alone,
0013), most recently updated first, page by page, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from typing import get_args

import asyncpg
from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite

from bot.events import UserMessage, new_id
from bot.thread import Thread, ThreadStatus
from storage import SqlStore
from storage.database import asyncpg_dsn, is_sqlite, sqlite_path
from storage.schema import threads
from storage.sql_store import _all_statuses

STATUSES: tuple[ThreadStatus, ...] = get_args(ThreadStatus)


async def _threads(store: SqlStore, count: int) -> list[tuple[str, str]]:
    """``count`` threads, their statuses in turn, updated in an order unlike their creation; (id, status) newest
    first."""
    made: list[tuple[float, str, str]] = []
    for i in range(count):
        status = STATUSES[(i * 3) % len(STATUSES)]
        thread = Thread(id=new_id(), events=[UserMessage(text=f"request {i}", user="U1")])
        await store.create_thread(thread, status)
        made.append((1_800_000_000 + (i * 7919) % count, thread.id, status))  # a permutation of the times
    async with store.engine.begin() as conn:
        for at, thread_id, _ in made:
            await conn.execute(update(threads).where(threads.c.id == thread_id).values(updated_at=at))
    return [(thread_id, status) for _, thread_id, status in sorted(made, reverse=True)]


async def test_all_threads_come_newest_first_page_by_page_across_statuses(store: SqlStore) -> None:
    expected = await _threads(store, 23)
    assert {status for _, status in expected} == set(STATUSES)
    listed = [(t.id, t.status) for t in await store.list_threads(limit=100)]
    assert listed == expected
    pages = [await store.list_threads(limit=4, offset=offset) for offset in range(0, 28, 4)]
    assert [(t.id, t.status) for page in pages for t in page] == expected
    assert pages[-1] == []
    for status in STATUSES:  # by status, the same order
        assert [t.id for t in await store.list_threads(status, limit=3, offset=1)] == [
            thread_id for thread_id, s in expected if s == status][1:4]


async def test_the_list_of_all_threads_searches_the_status_index_and_scans_nothing(store: SqlStore) -> None:
    """Each status's newest come from ``ix_threads_status_updated`` in order; only the few merged rows are sorted."""
    await _threads(store, 10)
    query = _all_statuses(50, 100)
    url = str(store.engine.url.render_as_string(hide_password=False))
    if is_sqlite(url):
        sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
        conn = sqlite3.connect(sqlite_path(url))
        try:
            plan = [row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        finally:
            conn.close()
        searches = [step for step in plan if "ix_threads_status_updated" in step]
        assert len(searches) == len(STATUSES), plan
        assert all(step.startswith("SEARCH threads USING INDEX ix_threads_status_updated (status=?)")
                   for step in searches), plan
        assert not any(step.startswith("SCAN threads") for step in plan), plan
        return
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    pg = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await pg.execute("SET enable_seqscan = off")  # a ten-row table would be scanned otherwise
        plan = " ".join(r[0] for r in await pg.fetch("EXPLAIN " + sql))
    finally:
        await pg.close()
    # Each status an index scan already in order (running ones through the runnable index, which holds only
    # them), merged in order: nothing scanned, nothing sorted.
    assert plan.count("Index Scan Backward using ix_threads_") == len(STATUSES), plan
    assert "Seq Scan" not in plan and "Merge Append" in plan, plan
