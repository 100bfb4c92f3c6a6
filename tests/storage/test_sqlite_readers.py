"""The SQLite reader threads: each read answered on its caller's loop, failures to their caller alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

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


async def test_a_slow_read_does_not_hold_up_another(tmp_path: Path) -> None:
    release = threading.Event()

    def slow(conn: sqlite3.Connection) -> int:
        release.wait(5)
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])

    async with readers_on(tmp_path / "r.db", 1) as readers:
        try:
            held = asyncio.ensure_future(readers.run(slow))
            assert await asyncio.wait_for(readers.run(lambda conn: 7), 2) == 7  # the other thread answered
            assert not held.done()
        finally:
            release.set()
        assert await held == 1


async def test_close_finishes_queued_reads_and_stops_every_thread(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    await _with_rows(path, 1)
    readers = SqliteReaders(str(path), threads=2)

    def slowly(conn: sqlite3.Connection) -> int:
        time.sleep(0.02)
        return 1

    pending = [asyncio.ensure_future(readers.run(slowly)) for _ in range(6)]
    await asyncio.sleep(0)  # queued
    threads = list(readers._threads)
    assert len(threads) == 2 and all(t.is_alive() for t in threads)
    await readers.close()
    assert [await p for p in pending] == [1] * 6
    assert not any(t.is_alive() for t in threads)
