"""Creating async engines: PostgreSQL via asyncpg, or SQLite in WAL mode with exactly one writer.

On SQLite, writers that race for the lock fall into SQLite's busy handler, which sleeps in steps of up to
100 ms; under a burst (Slack retries, a benchmark) that turns millisecond writes into long tails. So all writes
go through one connection (the pool queues callers fairly) and reads use a separate pool, which WAL lets run
beside the writer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.errors import ConfigError


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_engine(url: str, begin: str, **pool: Any) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 30}, pool_reset_on_return=None, **pool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves: pysqlite's implicit BEGIN is DEFERRED, and a deferred transaction that later
        # writes can fail to upgrade its lock under contention.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def create_engine(url: str) -> AsyncEngine:
    """The engine for writes (and for everything on PostgreSQL)."""
    if not is_sqlite(url):
        # Only cold queries (listings, counts, audit, migrations) use it; the hot path has its own asyncpg pool.
        return create_async_engine(url, pool_size=2, max_overflow=8, pool_pre_ping=True)
    return _sqlite_engine(url, "BEGIN IMMEDIATE", pool_size=1, max_overflow=0, pool_timeout=120)


def create_read_engine(url: str, writer: AsyncEngine) -> AsyncEngine:
    """The engine for reads: on SQLite a separate pool of deferred transactions; elsewhere the writer itself."""
    if not is_sqlite(url):
        return writer
    return _sqlite_engine(url, "BEGIN", pool_size=5, max_overflow=10)


def sqlite_path(url: str) -> str:
    """The file of a SQLite URL, for the sqlite3 module (the hot path opens its own connections)."""
    path = make_url(url).database
    if not path or path == ":memory:":
        raise ConfigError(f"DATABASE_URL: opsgate needs a SQLite file, not an in-memory database ({url})")
    return path


def asyncpg_dsn(url: str) -> str:
    """A PostgreSQL URL as asyncpg spells it (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
