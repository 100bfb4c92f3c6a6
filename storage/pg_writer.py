"""PostgreSQL through asyncpg for the hot path: a connection pool and group commit.

asyncpg prepares each statement once per connection and caches it, so a hot operation costs one round trip per
statement and no SQL compilation. Writes queue for a few committers (short-lived tasks, started when writes
arrive and ended when the queue is empty); each takes everything queued, runs it in one transaction and
answers every caller after COMMIT. Several committers keep PostgreSQL busy while one waits on its commit.

A batch runs first without savepoints (each is two more round trips per operation, which under a burst of
Slack acks cost more than the writes themselves). Only when an operation fails (a compare-and-set conflict, a
duplicate key) is the batch rolled back and run again with a savepoint per operation, so that failure undoes
that operation alone and its neighbours still commit.

A write that is one statement (``run(op, one_statement=True)``) and finds nobody to share its transaction with
runs without BEGIN and COMMIT: PostgreSQL makes every statement outside a transaction one of its own, equally
atomic and durable, and each of those two commands is a round trip (0.12 ms here, a third of a lone
statement's time).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

import asyncpg

from storage.group_commit import settle

T = TypeVar("T")
PgOp = Callable[[asyncpg.Connection], Awaitable[Any]]


class _Write(NamedTuple):
    """A queued write: the operation, its caller's future, and whether it is one statement (``run``)."""

    op: PgOp
    future: asyncio.Future[Any]
    one_statement: bool


_MAX_BATCH = 128


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool: nothing beyond asyncpg's own (an open transaction is
    still rolled back, listeners dropped). The default also sent ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN
    *; RESET ALL`` on every release, a round trip per write and per read for session state this store never sets
    (no advisory locks, cursors, LISTEN or SET): 2 of 11 round trips per launch, 5 of 23 per resume."""


class PgWriter:
    """Grouped write transactions on a shared asyncpg pool."""

    def __init__(self, dsn: str, committers: int = 4, pool_size: int = 10) -> None:
        self._dsn = dsn
        self._committers = committers
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._creating: asyncio.Lock | None = None
        self._pending: deque[_Write] = deque()
        self._drains: set[asyncio.Task[None]] = set()
        self._unstarted = 0  # drains created that have not taken their first batch yet
        self.transactions = 0
        self.operations = 0
        self.retried = 0  # batches run again with savepoints because one of their operations failed

    async def pool(self) -> asyncpg.Pool:
        """The pool, created on first use (in the running loop)."""
        if self._pool is None:
            if self._creating is None:
                self._creating = asyncio.Lock()
            async with self._creating:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=self._pool_size, command_timeout=60, reset=_keep_session,
                    )
        return self._pool

    async def read(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run a read on any pooled connection, outside the write queue."""
        async with (await self.pool()).acquire() as conn:
            return await op(conn)

    async def run(self, op: Callable[[asyncpg.Connection], Awaitable[T]], *, one_statement: bool = False) -> T:
        """Run ``op`` in the next grouped write transaction; its result after that transaction committed.

        ``one_statement``: ``op`` writes with a single statement (reads after it, such as a conflict's check, do
        not count), so alone it may run as its own transaction.
        """
        pool = await self.pool()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Write(op, future, one_statement))
        # A committer that has not started yet will take this write too; otherwise start one, up to the limit
        # (the running ones are each inside a transaction: this write joins whichever finishes first).
        if self._unstarted == 0 and len(self._drains) < self._committers:
            self._unstarted += 1
            task = asyncio.create_task(self._drain(pool), name="pg-committer")
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)  # also a committer cancelled before it ever ran
        return await future

    async def close(self) -> None:
        """Let queued writes commit, then close the pool."""
        if self._drains:
            await asyncio.gather(*self._drains, return_exceptions=True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _drain(self, pool: asyncpg.Pool) -> None:
        first = True
        try:
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(_MAX_BATCH, len(self._pending)))]
                if first:
                    self._unstarted -= 1
                    first = False
                try:
                    await self._transaction(pool, batch)
                except asyncio.CancelledError:
                    settle([(future, False, ConnectionError("the write was interrupted before its commit"))
                             for _, future, _ in batch])
                    raise
        finally:
            if first:
                self._unstarted -= 1
            # Out of the running set now, not in a done-callback: a caller woken by this committer's last answer
            # runs before such a callback and, finding the set full of committers that take nothing more, would
            # start none and wait forever.
            self._drains.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def _transaction(self, pool: asyncpg.Pool, batch: list[_Write]) -> None:
        if len(batch) == 1 and batch[0].one_statement:
            await self._statement(pool, batch[0].op, batch[0].future)
            return
        if len(batch) > 1:
            try:
                async with pool.acquire() as conn, conn.transaction():
                    values = [await op(conn) for op, _, _ in batch]
            except Exception:  # one operation failed (a conflict, a duplicate): run the batch again, each alone
                self.retried += 1
            else:
                self.transactions += 1
                self.operations += len(batch)
                settle([(future, True, value) for (_, future, _), value in zip(batch, values, strict=True)])
                return
        await self._isolated(pool, batch)

    async def _statement(self, pool: asyncpg.Pool, op: PgOp, future: asyncio.Future[Any]) -> None:
        """A lone one-statement write in PostgreSQL's own transaction for that statement."""
        try:
            async with pool.acquire() as conn:
                value = await op(conn)
        except Exception as exc:  # the statement failed: PostgreSQL stored none of it
            settle([(future, False, exc)])
        else:
            self.transactions += 1
            self.operations += 1
            settle([(future, True, value)])

    async def _isolated(self, pool: asyncpg.Pool, batch: list[_Write]) -> None:
        """The batch with a savepoint per operation: one's failure rolls back that operation only."""
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            async with pool.acquire() as conn, conn.transaction():
                for op, future, _ in batch:
                    if len(batch) == 1:
                        outcomes.append((future, True, await op(conn)))
                        continue
                    try:
                        async with conn.transaction():  # a savepoint
                            value = await op(conn)
                    except Exception as exc:  # this operation alone is undone
                        outcomes.append((future, False, exc))
                    else:
                        outcomes.append((future, True, value))
        except Exception as exc:  # the transaction itself failed: nothing of this batch is stored
            outcomes = [(future, False, exc) for _, future, _ in batch]
        else:
            self.transactions += 1
            self.operations += len(batch)
        settle(outcomes)
