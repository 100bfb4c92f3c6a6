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


def _logged(path: Path) -> list[str]:
    """What the ``log`` table holds, sorted."""
    conn = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in conn.execute("SELECT what FROM log"))
    finally:
        conn.close()


def _write(what: str, fail: bool = False, trace: Callable[[str], None] | None = None,
           ) -> Callable[[sqlite3.Connection], str]:
    """A write into ``log`` (no key: a repeat would show) that fails after writing when ``fail``."""
    def op(conn: sqlite3.Connection) -> str:
        conn.set_trace_callback(trace)
        conn.execute("INSERT INTO log (what) VALUES (?)", (what,))
        if fail:
            raise RuntimeError(f"{what} changed its mind")
        return what
    return op


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


async def test_after_a_failure_the_turn_runs_again_and_each_write_lands_once(tmp_path: Path) -> None:
    """A turn's writes run without a savepoint each; when one fails, everything is rolled back and run again one
    by one: the failed write's own earlier statements are undone, and no other write lands twice."""
    path = tmp_path / "w.db"
    writer = await _writer(path)
    try:
        await writer.run(lambda conn: conn.execute("CREATE TABLE log (what TEXT)"))
        before = writer.transactions
        outcomes = await asyncio.gather(
            writer.run(_write("a")), writer.run(_write("b", fail=True)), writer.run(_write("c")),
            return_exceptions=True)
        assert outcomes[0] == "a" and outcomes[2] == "c"
        assert isinstance(outcomes[1], RuntimeError) and "b changed its mind" in str(outcomes[1])
        assert writer.transactions - before == 1  # still one commit for the turn
        assert _logged(path) == ["a", "c"]
    finally:
        await writer.close()


async def test_a_lock_taken_between_the_rollback_and_the_rerun_sends_the_turn_to_the_writer_thread(
    tmp_path: Path,
) -> None:
    """Another connection takes the write lock in the moment after the rollback: the loop does not wait for it;
    the writer thread runs the turn again once the lock is free, and each write still lands exactly once."""
    path = tmp_path / "w.db"
    writer = await _writer(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    released = threading.Event()
    try:
        await writer.run(lambda conn: conn.execute("CREATE TABLE log (what TEXT)"))
        seen: list[str] = []

        def grab_before_the_rerun(statement: str) -> None:
            # Called as each statement starts: the BEGIN that follows the ROLLBACK finds the lock free, and another
            # process could take it right then. A thread of our own takes it (this callback runs inside our
            # connection's call) and holds it until the test releases it.
            seen.append(statement)
            if seen[-2:] != ["ROLLBACK", "BEGIN IMMEDIATE"] or seen.count("ROLLBACK") > 1:
                return
            took = threading.Event()

            def hold() -> None:
                holder.execute("BEGIN IMMEDIATE")
                took.set()
                released.wait(10)
                holder.execute("COMMIT")

            threading.Thread(target=hold, daemon=True).start()
            assert took.wait(5)

        turn = asyncio.gather(writer.run(_write("a")), writer.run(_write("b", True, grab_before_the_rerun)),
                              writer.run(_write("c")), return_exceptions=True)
        for _ in range(100):  # the loop keeps turning while the writer thread waits for the lock
            await asyncio.sleep(0.01)
            if writer.handed_off:
                break
        assert writer.handed_off == 1 and not turn.done()
        released.set()
        outcomes = await asyncio.wait_for(turn, 10)
        assert outcomes[0] == "a" and outcomes[2] == "c" and isinstance(outcomes[1], RuntimeError)
        assert _logged(path) == ["a", "c"]
    finally:
        released.set()
        await writer.close()
        holder.close()


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
