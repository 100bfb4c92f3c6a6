"""Throwaway PostgreSQL databases for the benchmarks that take ``--database-url``."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy import make_url

from storage import upgrade
from storage.database import asyncpg_dsn

DEFAULT_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


@asynccontextmanager
async def throwaway_database(server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database on ``server_url``'s server (its URL), dropped afterwards."""
    name = f"opsgate_bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        await upgrade(url)
        yield url
    finally:
        admin = await asyncpg.connect(asyncpg_dsn(server_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
