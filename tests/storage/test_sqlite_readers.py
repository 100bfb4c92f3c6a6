"""The SQLite reader threads: each read answered on its caller's loop, failures to their caller alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from storage import sqlite_threads
from storage.sqlite_threads import SqliteReaders, SqliteWriter


async def _with_rows(path: Path, n: int) -> None:
    writer = SqliteWriter(str(path))
    try:
        await writer.run(lambda conn: conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
        await writer.run(lambda conn: conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(n)]))
    finally:
        await writer.close()


@asynccontextmanager
async def readers_on(path: Path, rows: int, threads: int = 2) -> AsyncIterator[SqliteReaders]:
    """Readers on a database whose table ``t`` holds ``rows`` rows, closed afterwards."""
    await _with_rows(path, rows)
    readers = SqliteReaders(str(path), threads=threads)
    try:
        yield readers
    finally:
        await readers.close()


async def test_many_concurrent_reads_each_get_their_own_answer(tmp_path: Path) -> None:
    async with readers_on(tmp_path / "r.db", 50) as readers:
        answers = await asyncio.gather(*(
            readers.run(lambda conn, i=i: conn.execute("SELECT n FROM t WHERE n = ?", (i,)).fetchone()[0])
            for i in range(50)))
        assert answers == list(range(50))


async def test_a_failed_read_raises_for_its_caller_and_the_readers_go_on(tmp_path: Path) -> None:
    async with readers_on(tmp_path / "r.db", 3, threads=1) as readers:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await readers.run(lambda conn: conn.execute("SELECT * FROM missing").fetchall())
        with pytest.raises(sqlite3.OperationalError, match="readonly"):  # query_only: readers never write
            await readers.run(lambda conn: conn.execute("INSERT INTO t VALUES (99)"))
        assert await readers.run(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0]) == 3


def _off_loop(coro_fn: Callable[[], Awaitable[object]]) -> threading.Thread:
    """Run ``coro_fn()`` on its own event loop in another thread (as a second loop in the process would)."""
    thread = threading.Thread(target=lambda: asyncio.run(coro_fn()), daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


async def test_a_read_runs_on_the_callers_own_thread(tmp_path: Path) -> None:
    """No hop: the read is answered where it was asked for, and no reader thread is started."""
    async with readers_on(tmp_path / "r.db", 3) as readers:
        seen = await readers.run(lambda conn: (threading.get_ident(), conn.execute("SELECT count(*) FROM t")
                                               .fetchone()[0]))
        assert seen == (threading.get_ident(), 3)
        assert readers.handed_off == 0 and readers._threads == []


async def test_a_slow_read_on_another_loop_does_not_hold_up_this_one(tmp_path: Path) -> None:
    """While another thread's loop reads on the inline connection, this loop's read goes to a reader thread."""
    release, started = threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection) -> int:
        started.set()
        release.wait(5)
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])

    async with readers_on(tmp_path / "r.db", 1) as readers:
        other = _off_loop(lambda: readers.run(slow))
        try:
            assert started.wait(5)
            here = await asyncio.wait_for(readers.run(lambda conn: threading.get_ident()), 2)
            assert here != threading.get_ident() and readers.handed_off == 1  # a reader thread answered
            assert other.is_alive()
        finally:
            release.set()
        await asyncio.to_thread(other.join, 5)
        assert not other.is_alive()


async def test_a_locked_database_is_waited_for_on_a_reader_thread_not_on_the_loop(tmp_path: Path) -> None:
    """A process holding the database exclusively: the inline read gives up at once (it never waits on the loop),
    a reader thread waits, and the loop keeps serving others until the lock goes."""
    path = tmp_path / "r.db"
    await _with_rows(path, 2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("INSERT INTO t VALUES (2)")  # takes the exclusive lock and keeps it
    readers = SqliteReaders(str(path), threads=1)
    try:
        read = asyncio.ensure_future(readers.run(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0]))
        ticks = 0
        for _ in range(10):  # the loop is not blocked while the read waits
            await asyncio.sleep(0.02)
            ticks += 1
        assert ticks == 10 and not read.done() and readers.handed_off == 1
        holder.close()
        assert await asyncio.wait_for(read, 10) == 3
    finally:
        holder.close()
        await readers.close()


async def test_close_finishes_queued_reads_and_stops_every_thread(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    await _with_rows(path, 1)
    readers = SqliteReaders(str(path), threads=2)
    release, started = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> int:
        started.set()
        release.wait(5)
        return 0

    def slowly(conn: sqlite3.Connection) -> int:
        time.sleep(0.02)
        return 1

    other = _off_loop(lambda: readers.run(hold))  # the inline connection is busy: reads go to the threads
    assert started.wait(5)
    pending = [asyncio.ensure_future(readers.run(slowly)) for _ in range(6)]
    await asyncio.sleep(0)  # queued
    release.set()
    threads = list(readers._threads)
    assert len(threads) == 2 and all(t.is_alive() for t in threads)
    await readers.close()
    assert [await p for p in pending] == [1] * 6
    assert not any(t.is_alive() for t in threads)
    await asyncio.to_thread(other.join, 5)


@pytest.mark.parametrize(("code", "busy"), [
    (sqlite3.SQLITE_BUSY, True), (261, True), (517, True), (773, True),  # BUSY, _RECOVERY, _SNAPSHOT, _TIMEOUT
    (sqlite3.SQLITE_LOCKED, False), (sqlite3.SQLITE_ERROR, False), (sqlite3.SQLITE_READONLY, False),
])
def test_every_kind_of_busy_is_busy(code: int, busy: bool) -> None:
    """Python reports SQLite's extended code: each kind of SQLITE_BUSY sends the work to a thread that waits."""
    exc = sqlite3.OperationalError("database is locked")
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    assert sqlite_threads._busy(exc) is busy


async def test_a_read_that_cannot_open_its_connection_for_a_lock_goes_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loop's read connection is opened on first use; a busy database then (an extended code, as seen in a
    benchmark run) sends the read to a reader thread instead of failing it (a worker's claim, a decision's load)."""
    real = sqlite_threads.connect
    refused: list[int] = []

    def connect(path: str, *, readonly: bool = False, busy_ms: int = 30000) -> sqlite3.Connection:
        if readonly and busy_ms == 0 and not refused:
            refused.append(1)
            exc = sqlite3.OperationalError("database is locked")
            exc.sqlite_errorcode = 261  # type: ignore[attr-defined]  # SQLITE_BUSY_RECOVERY
            raise exc
        return real(path, readonly=readonly, busy_ms=busy_ms)

    monkeypatch.setattr(sqlite_threads, "connect", connect)
    async with readers_on(tmp_path / "r.db", rows=3) as readers:
        count = await readers.run(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0])
        assert count == 3 and refused and readers.handed_off == 1
        assert await readers.run(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0]) == 3
        assert readers.handed_off == 1  # the next read opened the loop's connection and stayed here


def test_a_read_only_connection_leaves_the_journal_mode_to_the_writers(tmp_path: Path) -> None:
    """Setting WAL takes a lock; WAL is the database file's own setting, made by the writing connections."""
    path = tmp_path / "j.db"
    plain = sqlite3.connect(path)
    plain.execute("CREATE TABLE t (n INTEGER)")
    plain.commit()
    plain.close()
    reader = sqlite_threads.connect(str(path), readonly=True, busy_ms=0)
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        with pytest.raises(sqlite3.OperationalError):
            reader.execute("INSERT INTO t VALUES (1)")  # query_only
    finally:
        reader.close()
    writer = sqlite_threads.connect(str(path))
    try:
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        writer.close()
