"""Database URLs for tests: a SQLite file, or a fresh throwaway PostgreSQL database on 127.0.0.1:5432."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def sqlite_url(path: str | Path) -> str:
    """SQLAlchemy async URL for a SQLite file (absolute path)."""
    return f"sqlite+aiosqlite:///{Path(path).resolve()}"


async def move_table_away(database: str | AsyncEngine, table: str) -> None:
    """Rename ``table`` to ``<table>_gone`` in a migrated database (a URL, or a running store's engine), so every
    statement on it fails inside the database: a real fault on either backend, with no code patched."""
    engine = create_async_engine(database) if isinstance(database, str) else database
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'ALTER TABLE "{table}" RENAME TO "{table}_gone"'))
    finally:
        if engine is not database:
            await engine.dispose()


async def _admin_connection() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL is required for these tests but {POSTGRES_ADMIN_DSN} is not usable ({exc!r}). "
            "Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        ) from exc


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """Create ``opsgate_t_<hex>``, yield its postgresql+asyncpg URL, then drop it (ending its sessions)."""
    name = f"opsgate_t_{secrets.token_hex(6)}"
    admin = await _admin_connection()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await _admin_connection()
        try:
            # A killed opsgate process or an undisposed engine may still hold sessions; DROP would refuse.
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
