"""SQLite connections for the hot path: one writer thread with group commit, and a small pool of reader threads.

Each store operation is one synchronous function run on the writer's thread: one hop from the event loop per
operation instead of one per statement, and sqlite3's statement cache prepares each SQL text once per
connection. Operations that arrive while a transaction runs wait in the queue and are all run in the next
transaction (group commit), each inside its own savepoint, so one operation's failure (a compare-and-set
conflict, a duplicate ref) rolls back that operation only. Every caller is answered after the COMMIT returned.
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

_MAX_BATCH = 256  # operations per transaction: bounds the time a reader's snapshot lags and a batch's latency


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, synchronous=NORMAL."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    if readonly:
        conn.execute("PRAGMA query_only=1")
    return conn


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
    """The one writing connection, owned by one thread, fed by a queue from any event loop."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.transactions = 0  # committed transactions (for tests and benchmarks: group commit at work)
        self.operations = 0

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="opsgate-sqlite-writer", daemon=True)
                self._thread.start()

    async def run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op`` in the next write transaction; its result once that transaction committed."""
        if self._thread is None:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(op, loop, future))
        return await future

    async def close(self) -> None:
        """Finish queued operations, then stop the thread and close the connection."""
        thread = self._thread
        if thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(thread.join)
            self._thread = None

    def _serve(self) -> None:
        conn = connect(self._path)
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                batch = [job]
                stop = False
                while len(batch) < _MAX_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                self._transaction(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _transaction(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        outcomes: list[tuple[_Job, bool, Any]] = []
        grouped = len(batch) > 1
        try:
            conn.execute("BEGIN IMMEDIATE")
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
            if conn.in_transaction:
                conn.execute("COMMIT")
        except Exception as exc:  # BEGIN, a savepoint or COMMIT failed: nothing of this batch is stored
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(job, False, exc) for job in batch]
        else:
            self.transactions += 1
            self.operations += len(batch)
        _answer(outcomes)


class SqliteReaders:
    """Reads on their own connections (WAL lets them run beside the writer), on a few threads.

    The threads take jobs from one queue and answer like the writer: an asyncio future set on its loop. Not
    ``run_in_executor``: its ``concurrent.futures.Future`` (a Condition and an RLock each) and the wrapping
    future cost more of the event loop's time than the read itself (7% of a benchmark's loop, issue 11).
    """

    def __init__(self, path: str, threads: int = 2) -> None:
        self._path = path
        self._size = threads
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self._size:
                thread = threading.Thread(target=self._serve, name=f"opsgate-sqlite-reader-{len(self._threads)}",
                                          daemon=True)
                thread.start()
                self._threads.append(thread)

    async def run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only ``op`` on a reader thread (one hop)."""
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
