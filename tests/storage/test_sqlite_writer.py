"""The SQLite writer: a loop turn's writes commit together on the loop's own thread while the write lock is free;
a lock held elsewhere sends them to the writer thread, which waits for it instead of the loop; checkpoints run
there too, so the log stays bounded under steady writes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from storage import sqlite_threads
from storage.sqlite_threads import SqliteWriter


async def _writer(path: Path) -> SqliteWriter:
    writer = SqliteWriter(str(path))
    await writer.run(lambda conn: conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, body BLOB)"))
    return writer


def _count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        conn.close()


def _log_size(path: Path) -> int:
    return os.path.getsize(f"{path}-wal")


async def test_a_turns_writes_commit_together_on_the_loops_own_thread(tmp_path: Path) -> None:
    writer = await _writer(tmp_path / "w.db")
    try:
        before = writer.transactions

        def insert(n: int) -> Callable[[sqlite3.Connection], int]:
            def op(conn: sqlite3.Connection) -> int:
                conn.execute("INSERT INTO t (n) VALUES (?)", (n,))
                return threading.get_ident()
            return op

        threads = await asyncio.gather(*(writer.run(insert(n)) for n in range(10)))
        assert set(threads) == {threading.get_ident()}  # no hop
        assert writer.transactions - before == 1 and writer.handed_off == 0
        assert _count(tmp_path / "w.db") == 10  # committed before the callers heard back
    finally:
        await writer.close()


async def test_a_failure_in_a_turn_fails_that_write_alone(tmp_path: Path) -> None:
    writer = await _writer(tmp_path / "w.db")
    try:
        outcomes = await asyncio.gather(
            writer.run(lambda conn: conn.execute("INSERT INTO t (n) VALUES (1)")),
            writer.run(lambda conn: conn.execute("INSERT INTO t (n) VALUES (1)")),  # the same key: fails
            writer.run(lambda conn: conn.execute("INSERT INTO t (n) VALUES (2)")),
            return_exceptions=True)
        assert isinstance(outcomes[1], sqlite3.IntegrityError)
        assert not isinstance(outcomes[0], Exception) and not isinstance(outcomes[2], Exception)
        assert _count(tmp_path / "w.db") == 2
    finally:
        await writer.close()


async def test_a_write_lock_held_elsewhere_is_waited_for_on_the_writer_thread(tmp_path: Path) -> None:
    """Another connection (a CLI command, another process) holds the lock: the loop goes on serving while the
    writer thread waits; the writes land, grouped, once the lock is released, and only then are callers told."""
    path = tmp_path / "w.db"
    writer = await _writer(path)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        writes = [asyncio.ensure_future(writer.run(
            lambda conn, n=n: (conn.execute("INSERT INTO t (n) VALUES (?)", (n,)), threading.get_ident())[1]))
            for n in range(5)]
        for _ in range(10):  # the loop is not blocked while the writes wait
            await asyncio.sleep(0.02)
        assert not any(w.done() for w in writes) and writer.handed_off == 1
        holder.execute("COMMIT")
        threads = await asyncio.wait_for(asyncio.gather(*writes), 10)
        assert threading.get_ident() not in threads
        assert _count(path) == 5
        assert await writer.run(lambda conn: threading.get_ident()) == threading.get_ident()  # back inline
    finally:
        holder.close()
        await writer.close()


async def test_checkpoints_run_on_the_writer_thread_and_keep_the_log_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints run on the writer thread (never on the loop), most beside the loop's commits; every few hold the
    writes back until done, so the log starts over: bounded under steady writes."""
    monkeypatch.setattr(sqlite_threads, "_CHECKPOINT_EVERY", 32)
    monkeypatch.setattr(sqlite_threads, "_HOLD_EVERY", 4)
    path = tmp_path / "w.db"
    writer = await _writer(path)
    try:
        body = os.urandom(6000)  # two pages or more a transaction
        commits = 2000
        for n in range(commits):
            await writer.run(lambda conn, n=n: conn.execute("INSERT INTO t VALUES (?, ?)", (n, body)))
        assert writer._inline is not None
        assert writer._inline.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # never on the loop
        assert writer.checkpoints >= commits // 32 // 2
        unbounded = commits * 2 * 4096
        assert _log_size(path) < unbounded / 6  # the log started over again and again (128 commits: ~1.6 MB)
    finally:
        await writer.close()
    assert _count(path) == commits


async def test_close_commits_the_writes_asked_for_in_its_turn(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = await _writer(path)
    write = asyncio.ensure_future(writer.run(lambda conn: conn.execute("INSERT INTO t (n) VALUES (7)")))
    await asyncio.sleep(0)  # the write is asked for
    await writer.close()
    assert _count(path) == 1  # committed before close returned
    await write


async def test_an_unwritable_database_fails_every_caller_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db"
    path.write_bytes(b"this is not a database file" * 200)
    writer = SqliteWriter(str(path))
    try:
        with pytest.raises(sqlite3.DatabaseError):
            await asyncio.wait_for(writer.run(lambda conn: None), 5)
    finally:
        await writer.close()
