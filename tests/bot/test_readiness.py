"""/healthz is liveness (no database); /readyz says 503 while the database cannot be written, and 200 again after.

Real `opsgate serve` processes. The database is made unwritable for real: on SQLite another connection holds the
write lock (a backup tool or a stuck shell would); on PostgreSQL the database is switched to read-only
transactions (ALTER DATABASE … SET default_transaction_read_only) and its sessions are ended so the new setting
applies.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from storage import upgrade
from tests.support.databases import POSTGRES_ADMIN_DSN, postgres_database
from tests.support.processes import OpsgateProcess


async def ready_status(client: httpx.AsyncClient, wanted: int, within: float = 15.0) -> httpx.Response:  # noqa: ASYNC109
    """Poll /readyz until it answers ``wanted`` (results are reused for a second); fail with the last answer."""
    deadline = time.monotonic() + within
    while True:
        response = await client.get("/readyz")
        if response.status_code == wanted or time.monotonic() > deadline:
            assert response.status_code == wanted, response.text
            return response
        await asyncio.sleep(0.2)


async def test_sqlite_readiness_follows_the_write_lock(sqlite_database_url: str, tmp_workdir: Path) -> None:
    """While another connection holds SQLite's write lock /readyz is 503 (and /healthz 200); after it, 200."""
    async with OpsgateProcess({"DATABASE_URL": sqlite_database_url}, cwd=tmp_workdir) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
            assert (await ready_status(client, 200)).json() == {"ready": True}
            holder = sqlite3.connect(sqlite_database_url.split("///", 1)[1], isolation_level=None)
            try:
                holder.execute("BEGIN EXCLUSIVE")
                busy = await ready_status(client, 503)
                assert busy.json() == {"ready": False,
                                       "reason": "the database did not accept a write within 3 s"}
                assert (await client.get("/healthz")).status_code == 200  # liveness does not touch the database
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            await ready_status(client, 200)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A migrated throwaway PostgreSQL database."""
    async with postgres_database() as url:
        await upgrade(url)
        yield url


async def set_read_only(database: str, read_only: bool) -> None:
    """Switch the database's default transactions to read-only (or back) and end its sessions."""
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        setting = "SET default_transaction_read_only = on" if read_only else "RESET default_transaction_read_only"
        await admin.execute(f'ALTER DATABASE "{database}" {setting}')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await admin.close()


async def test_postgres_readiness_follows_a_read_only_database(postgres_url: str, tmp_workdir: Path) -> None:
    """A read-only PostgreSQL database makes /readyz 503 with an error id (details only in the log); then 200."""
    database = postgres_url.rsplit("/", 1)[1]
    async with OpsgateProcess({"DATABASE_URL": postgres_url}, cwd=tmp_workdir) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
            await ready_status(client, 200)
            await set_read_only(database, True)
            try:
                body = (await ready_status(client, 503)).json()
                assert body["reason"] == "the database cannot be written" and set(body) == {
                    "ready", "reason", "error_id"}
                record = await server.wait_for_log(event="not_ready", error_id=body["error_id"])
                assert "read-only" in str(record)
                assert (await client.get("/healthz")).status_code == 200
            finally:
                await set_read_only(database, False)
            await ready_status(client, 200)
