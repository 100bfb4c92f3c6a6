"""The PostgreSQL writer's pool: no session-reset round trip per release, yet nothing leaks between uses."""

from __future__ import annotations

import asyncio

import asyncpg

from storage.database import asyncpg_dsn
from storage.pg_writer import PgOp, PgWriter
from tests.support.databases import postgres_database


def insert(n: int) -> PgOp:
    """A write of one row."""
    return lambda conn: conn.execute("INSERT INTO t VALUES ($1)", n)


async def logged_writer(url: str) -> tuple[PgWriter, list[str]]:
    """A writer on one pooled connection whose queries are recorded (after creating table ``t``)."""
    writer = PgWriter(asyncpg_dsn(url), committers=1, pool_size=1)
    sent: list[str] = []
    async with (await writer.pool()).acquire() as conn:
        await conn.execute("CREATE TABLE t (n int PRIMARY KEY)")
        conn.add_query_logger(lambda record: sent.append(record.query))
    return writer, sent


async def test_a_released_connection_costs_no_reset_query_and_never_keeps_a_transaction() -> None:
    async with postgres_database() as url:
        writer, sent = await logged_writer(url)
        try:
            pool = await writer.pool()
            for n in range(3):
                await writer.run(insert(n))
                assert await writer.read(lambda conn: conn.fetchval("SELECT count(*) FROM t")) == n + 1
            assert not [q for q in sent if "RESET ALL" in q or "pg_advisory_unlock_all" in q], sent

            # A use that ends inside a transaction (a bug, a cancellation) is rolled back on release all the same.
            conn = await pool.acquire()
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO t VALUES (99)")
            await pool.release(conn)
            async with pool.acquire() as again:  # pool_size=1: the same connection
                assert again.is_in_transaction() is False
                assert await again.fetchval("SELECT count(*) FROM t WHERE n = 99") == 0
        finally:
            await writer.close()


async def test_writes_from_many_tasks_all_commit() -> None:
    """The grouped path still commits every write when connections go back to the pool without a reset."""
    async with postgres_database() as url:
        writer = PgWriter(asyncpg_dsn(url))
        try:
            await writer.run(lambda conn: conn.execute("CREATE TABLE t (n int PRIMARY KEY)"))
            results = await asyncio.gather(*(writer.run(insert(n)) for n in range(200)), return_exceptions=True)
            assert not [r for r in results if isinstance(r, Exception)]
            assert await writer.read(lambda conn: conn.fetchval("SELECT count(*) FROM t")) == 200
        finally:
            await writer.close()
        check = await asyncpg.connect(asyncpg_dsn(url))
        try:
            assert await check.fetchval("SELECT count(*) FROM t") == 200
        finally:
            await check.close()


async def test_a_lone_one_statement_write_runs_without_begin_and_commit() -> None:
    """PostgreSQL makes a statement outside a transaction its own transaction: BEGIN and COMMIT would be two more
    round trips. A write that is not declared one statement keeps them (its statements must commit together)."""
    async with postgres_database() as url:
        writer, sent = await logged_writer(url)
        try:
            await writer.run(insert(1), one_statement=True)
            assert not [q for q in sent if q.strip().upper().startswith(("BEGIN", "COMMIT"))], sent
            check = await asyncpg.connect(asyncpg_dsn(url))  # committed: another session sees it
            try:
                assert await check.fetchval("SELECT count(*) FROM t") == 1
            finally:
                await check.close()

            sent.clear()

            async def two(conn: asyncpg.Connection) -> None:
                await conn.execute("INSERT INTO t VALUES (2)")
                await conn.execute("INSERT INTO t VALUES (3)")

            await writer.run(two)
            said = [q.strip().upper() for q in sent]
            assert [q for q in said if q.startswith("BEGIN")] and [q for q in said if q.startswith("COMMIT")], sent
        finally:
            await writer.close()


async def test_a_failed_lone_statement_stores_nothing_and_reports_its_error() -> None:
    async with postgres_database() as url:
        writer = PgWriter(asyncpg_dsn(url), committers=1, pool_size=1)
        try:
            await writer.run(lambda conn: conn.execute("CREATE TABLE t (n int PRIMARY KEY)"))
            await writer.run(insert(1), one_statement=True)
            try:
                await writer.run(lambda conn: conn.execute("INSERT INTO t VALUES (2), (1)"), one_statement=True)
            except asyncpg.UniqueViolationError:
                pass
            else:
                raise AssertionError("a duplicate key must fail the write")
            assert await writer.read(lambda conn: conn.fetchval("SELECT array_agg(n) FROM t")) == [1]
            await writer.run(insert(3), one_statement=True)  # the writer goes on
            assert await writer.read(lambda conn: conn.fetchval("SELECT count(*) FROM t")) == 2
        finally:
            await writer.close()


async def test_one_statement_writes_that_arrive_together_still_share_a_transaction_and_fail_alone() -> None:
    async with postgres_database() as url:
        writer = PgWriter(asyncpg_dsn(url), committers=1)
        try:
            await writer.run(lambda conn: conn.execute("CREATE TABLE t (n int PRIMARY KEY)"))
            await writer.run(insert(7))
            before = writer.transactions
            results = await asyncio.gather(*(writer.run(insert(n), one_statement=True) for n in range(50)),
                                           return_exceptions=True)
            failed = [n for n, r in enumerate(results) if isinstance(r, Exception)]
            assert failed == [7]
            assert isinstance(results[7], asyncpg.UniqueViolationError)
            assert await writer.read(lambda conn: conn.fetchval("SELECT count(*) FROM t")) == 50
            assert writer.transactions - before < 50  # grouped, not one transaction each
        finally:
            await writer.close()


async def test_a_write_made_as_soon_as_the_last_one_is_answered_is_not_stranded() -> None:
    """The caller of a committer's last write runs before that committer's done-callback: a committer that takes
    nothing more must not count as running then, or with every slot so taken the next write waits forever."""
    async with postgres_database() as url:
        writer = PgWriter(asyncpg_dsn(url), committers=1)
        try:
            await writer.run(lambda conn: conn.execute("CREATE TABLE t (n int PRIMARY KEY)"))

            async def one_after_another() -> None:  # awaited in this task, right after each answer
                for n in range(20):
                    await writer.run(insert(n), one_statement=n % 2 == 0)

            await asyncio.wait_for(one_after_another(), 10)
            assert await writer.read(lambda conn: conn.fetchval("SELECT count(*) FROM t")) == 20
        finally:
            await writer.close()
