"""SQLite connections for the hot path: writes and reads on the event loop's own thread, with threads to wait.

Each store operation is one synchronous function. The writes a loop asks for during one turn run together at the
end of that turn, in one transaction (group commit), each inside its own savepoint, so that one operation's
failure (a compare-and-set conflict, a duplicate ref) rolls back that operation only. That transaction runs
right there on the loop's thread while nobody else holds SQLite's write lock: with WAL and synchronous=NORMAL a
commit only appends to the log (no fsync), which costs less than handing the work to another thread and back
(about 15 µs against 75 µs of wall time, 33 µs of it the loop's, per operation). Those connections never wait for
a lock: when another connection or process holds it, the writes go to the writer thread (reads to a reader
thread), which waits there, never on the loop. Checkpoints (the fsyncs) run on the writer thread too. Every
caller is answered after the COMMIT.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from storage.group_commit import settle

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]

_MAX_BATCH = 256  # per transaction on the writer thread; a loop commits its turn whole (splitting frees it no sooner)
_CHECKPOINT_EVERY = 256  # transactions committed on loops between two checkpoints on the writer thread
_HOLD_EVERY = 4  # every 4th checkpoint holds the writes back until it is done: the log starts over
_BUSY = sqlite3.SQLITE_BUSY  # another connection holds a lock (the write lock, or the log's index for a moment)


def connect(path: str, *, readonly: bool = False, busy_ms: int = 30000) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, synchronous=NORMAL; a lock held
    elsewhere is waited for up to ``busy_ms`` (0 on a loop's thread: it must never wait)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        if readonly:  # WAL is the database's own setting, made by the writers: a reader need not take a lock for it
            conn.execute("PRAGMA query_only=1")
        else:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _busy(exc: sqlite3.Error) -> bool:
    """Any kind of SQLITE_BUSY: Python reports the extended code (SQLITE_BUSY_RECOVERY, _SNAPSHOT, _TIMEOUT are
    5 in their low byte). Matching 5 alone once let a reader's "database is locked" out to the worker, which took
    it for a failed claim and slept a whole poll interval."""
    return isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorcode & 0xFF == _BUSY


class _LockTaken(Exception):
    """The inline connection rolled a batch back and another connection took the write lock before it could
    begin again."""


@dataclass(slots=True)
class _Checkpoint:
    """Queued for the writer thread: copy the log into the database file. ``hold``: the loops' writes wait behind
    it (they were handed to the writer thread from the moment it was queued)."""

    hold: bool


@dataclass(slots=True)
class _Job:
    op: Op
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _answer(outcomes: list[tuple[_Job, bool, Any]]) -> None:
    """Hand each job's result or error to the loop its caller waits on (one wake-up per loop)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for job, ok, value in outcomes:
        by_loop.setdefault(job.loop, []).append((job.future, ok, value))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(settle, settled)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


class SqliteWriter:
    """The writing connections: one used on event loops while the write lock is free, one owned by a thread that
    waits for it otherwise. Callers hear back after the COMMIT either way.

    Writes wait for the end of their loop turn even when they turn out to be alone: running a lone write at once
    saved 3% of a sequential resume (two loop turns per write), within the benchmark's noise, and a burst of Slack
    events then committed one by one until noticed (ack p99 25-36 ms instead of 19).
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._queue: queue.SimpleQueue[list[_Job] | _Checkpoint | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        self._inline: sqlite3.Connection | None = None
        self._inline_lock = threading.Lock()  # loops on several threads share the one inline connection
        self._since_checkpoint = 0
        self._checkpoint_due = False
        self.transactions = 0  # committed transactions (for tests and benchmarks: group commit at work)
        self.operations = 0
        self.handed_off = 0  # batches that found the write lock taken and went to the writer thread
        self.checkpoints = 0

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="opsgate-sqlite-writer", daemon=True)
                self._thread.start()

    async def run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op`` in the transaction of this loop turn's writes; its result once that transaction committed."""
        loop = asyncio.get_running_loop()
        pending = self._pending.get(loop)
        future: asyncio.Future[T] = loop.create_future()
        job = _Job(op, loop, future)
        if pending is None:
            self._pending[loop] = [job]
            loop.call_soon(self._flush, loop)
        else:
            pending.append(job)
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop, once its turn is over: commit the turn's writes here, or hand them to the writer thread."""
        batch = self._pending.pop(loop)
        outcomes = self._commit_here(batch)
        if outcomes is None:
            self.handed_off += 1
            self._hand_off(batch)  # one item: the thread commits the turn together
        else:
            settle([(job.future, ok, value) for job, ok, value in outcomes])

    def _commit_here(self, batch: list[_Job]) -> list[tuple[_Job, bool, Any]] | None:
        """The batch's transaction on this thread, on the inline connection; None if that connection is in use
        on another thread or the write lock is held elsewhere (nothing ran)."""
        if self._checkpoint_due or not self._inline_lock.acquire(blocking=False):
            return None
        try:
            if self._inline is None:
                self._inline = connect(self._path, busy_ms=0)
                self._inline.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints fsync: never on a loop
            self._inline.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._inline_lock.release()
            if _busy(exc):
                return None  # the writer thread waits for the lock, not this loop
            return [(job, False, exc) for job in batch]  # the database cannot be written: every caller hears why
        try:
            outcomes = self._transaction(self._inline, batch)
        except _LockTaken:
            return None  # rolled back after a failure, and the lock went elsewhere: the writer thread retries
        finally:
            self._inline_lock.release()
        self._since_checkpoint += 1
        if self._since_checkpoint % _CHECKPOINT_EVERY == 0:
            hold = self._since_checkpoint >= _CHECKPOINT_EVERY * _HOLD_EVERY
            if hold:
                self._since_checkpoint = 0
                self._checkpoint_due = True  # until it ran, writes queue behind it on the writer thread
            self._hand_off(_Checkpoint(hold))
        return outcomes

    def _hand_off(self, item: list[_Job] | _Checkpoint) -> None:
        if self._thread is None:
            self._start()
        self._queue.put(item)

    async def close(self) -> None:
        """Finish queued operations, then stop the thread and close the connections."""
        await asyncio.sleep(0)  # this loop's last turn of writes is flushed first
        thread = self._thread
        if thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(thread.join)
            self._thread = None
        with self._inline_lock:
            if self._inline is not None:
                self._inline.close()
                self._inline = None

    def _serve(self) -> None:
        conn = connect(self._path)
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                if isinstance(item, _Checkpoint):
                    self._checkpoint(conn, item.hold)
                    continue
                batch = list(item)
                stop = False
                checkpoint: _Checkpoint | None = None
                while len(batch) < _MAX_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    if isinstance(more, _Checkpoint):  # two at once: one, holding if either held
                        checkpoint = _Checkpoint(more.hold or (checkpoint is not None and checkpoint.hold))
                    else:
                        batch.extend(more)
                try:
                    conn.execute("BEGIN IMMEDIATE")  # waits out another holder of the lock (busy_timeout)
                except Exception as exc:
                    _answer([(job, False, exc) for job in batch])
                else:
                    _answer(self._transaction(conn, batch))
                if checkpoint is not None:
                    self._checkpoint(conn, checkpoint.hold)
                if stop:
                    return
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection, hold: bool) -> None:
        """Copy the log into the database file, mostly beside the loops' commits, so its fsyncs hold up no write.

        The log starts over at the first write after a checkpoint that caught up with it; one racing steady
        writes may never catch up. So every ``_HOLD_EVERY``-th checkpoint holds the writes back (``hold``: they
        queue behind it on this thread), finishes, and the log is bounded."""
        try:
            if hold:
                with self._inline_lock:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            else:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self.checkpoints += 1
        except sqlite3.Error:  # the next one catches up; a failed checkpoint loses nothing
            pass
        finally:
            if hold:
                self._checkpoint_due = False

    def _transaction(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[tuple[_Job, bool, Any]]:
        """Run a batch in the transaction just begun and commit; each job's outcome (a failure fails only its own).

        Several operations first run straight after one another: a savepoint for each (or even one for the whole
        batch) cost 7-10% of a concurrent launch or resume in SQLite's statement journals. When one of them
        fails, the transaction is rolled back and the batch runs again in a new one, a savepoint each, so that
        only the failed one is undone. Operations are SQL and nothing else, so running one again after the
        rollback is running it for the first time. Raises ``_LockTaken`` when the inline connection could not
        take the lock again at once (another connection took it in between): nothing of the batch is stored."""
        try:
            outcomes = self._together(conn, batch) if len(batch) > 1 else None
            if outcomes is None:
                if not conn.in_transaction:  # rolled back by _together: begin again
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                    except sqlite3.Error as exc:
                        if conn is self._inline and _busy(exc):
                            raise _LockTaken from exc
                        raise
                outcomes = self._one_by_one(conn, batch)
            if conn.in_transaction:
                conn.execute("COMMIT")
        except _LockTaken:
            raise
        except Exception as exc:  # a savepoint or COMMIT failed: nothing of this batch is stored
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(job, False, exc) for job in batch]
        self.transactions += 1
        self.operations += len(batch)
        return outcomes

    @staticmethod
    def _together(conn: sqlite3.Connection, batch: list[_Job]) -> list[tuple[_Job, bool, Any]] | None:
        """Every operation's result when none failed; None, with the transaction rolled back, when one did."""
        outcomes: list[tuple[_Job, bool, Any]] = []
        for job in batch:
            try:
                outcomes.append((job, True, job.op(conn)))
            except Exception:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                return None
        return outcomes

    @staticmethod
    def _one_by_one(conn: sqlite3.Connection, batch: list[_Job]) -> list[tuple[_Job, bool, Any]]:
        """Each operation in a savepoint of its own (alone: the transaction), undone alone when it fails."""
        outcomes: list[tuple[_Job, bool, Any]] = []
        grouped = len(batch) > 1
        for job in batch:
            if grouped:
                conn.execute("SAVEPOINT op")
            try:
                value = job.op(conn)
            except Exception as exc:  # this operation's own failure: undo it alone
                if grouped:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                else:
                    conn.execute("ROLLBACK")
                outcomes.append((job, False, exc))
            else:
                if grouped:
                    conn.execute("RELEASE op")
                outcomes.append((job, True, value))
        return outcomes


class SqliteReaders:
    """Reads on their own connections (WAL lets them run beside the writer): on the caller's own thread when the
    loop's read connection is free, else on a few reader threads.

    A hot read (a thread's events, a ref, a probe) costs a few µs of SQLite; a hop to a thread and back costs the
    loop about 33 µs and the caller 75 µs. So a read runs where it is asked for. The threads serve what cannot:
    a read while another thread uses the inline connection, or one that found the database locked (a process
    holding it exclusively), which the threads wait out instead of the loop. They answer like the writer: an
    asyncio future set on the caller's loop (not ``run_in_executor``, whose futures cost the loop more than a
    read).
    """

    def __init__(self, path: str, threads: int = 2) -> None:
        self._path = path
        self._size = threads
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._inline: sqlite3.Connection | None = None
        self._inline_lock = threading.Lock()
        self.handed_off = 0  # reads that went to a reader thread

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self._size:
                thread = threading.Thread(target=self._serve, name=f"opsgate-sqlite-reader-{len(self._threads)}",
                                          daemon=True)
                thread.start()
                self._threads.append(thread)

    async def run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only ``op``: here if the inline connection is free and the database not locked, else on a
        reader thread (one hop)."""
        if self._inline_lock.acquire(blocking=False):
            try:
                if self._inline is None:
                    self._inline = connect(self._path, readonly=True, busy_ms=0)  # locked: a thread waits
                return op(self._inline)
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise
            finally:
                self._inline_lock.release()
        self.handed_off += 1
        if not self._threads:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(op, loop, future))
        return await future

    async def close(self) -> None:
        """Finish queued reads, then stop the threads and close their connections."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            await asyncio.to_thread(thread.join)
        with self._inline_lock:
            if self._inline is not None:
                self._inline.close()
                self._inline = None

    def _serve(self) -> None:
        conn = connect(self._path, readonly=True)
        try:
            while (job := self._queue.get()) is not None:
                try:
                    outcome = (job, True, job.op(conn))
                except Exception as exc:  # the read's own failure, for its caller
                    outcome = (job, False, exc)
                _answer([outcome])
        finally:
            conn.close()
