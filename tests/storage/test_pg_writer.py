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


async def test_a_released_connection_costs_no_reset_query_and_never_keeps_a_transaction() -> None:
    async with postgres_database() as url:
        writer = PgWriter(asyncpg_dsn(url), committers=1, pool_size=1)
        sent: list[str] = []
        try:
            pool = await writer.pool()
            async with pool.acquire() as conn:
                conn.add_query_logger(lambda record: sent.append(record.query))
                await conn.execute("CREATE TABLE t (n int)")
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
