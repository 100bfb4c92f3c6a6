"""Database helpers give working URLs and clean up the throwaway PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from tests.support.databases import POSTGRES_ADMIN_DSN, postgres_database, sqlite_url


def test_sqlite_url_is_absolute(tmp_path: Path) -> None:
    """sqlite_url gives an aiosqlite URL with an absolute path (four slashes)."""
    assert sqlite_url(tmp_path / "x.db") == f"sqlite+aiosqlite:///{tmp_path.resolve()}/x.db"
    assert sqlite_url(tmp_path / "x.db").startswith("sqlite+aiosqlite:////")


async def test_postgres_database_is_created_and_dropped() -> None:
    """The database exists inside the block (even with a session left open) and is gone afterwards."""
    async with postgres_database() as url:
        name = url.rsplit("/", 1)[1]
        assert url.startswith("postgresql+asyncpg://postgres@127.0.0.1:5432/opsgate_t_")
        leftover = await asyncpg.connect(url.replace("+asyncpg", ""))
        assert await leftover.fetchval("SELECT current_database()") == name
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
    finally:
        await admin.close()
    assert leftover.is_closed() or not await _alive(leftover)


async def _alive(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
        return True
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    finally:
        conn.terminate()
