"""Schema migrations through the real CLI: `opsgate db upgrade`, first-run SQLite, PostgreSQL without upgrade."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from storage import SqlStore
from storage.migrate import current_revision, head_revision
from tests.support.api_client import run_cli
from tests.support.databases import postgres_database
from tests.support.processes import OpsgateProcess
from tests.support.servers import free_port

TABLES = {"threads", "events", "refs", "outbox", "state", "records", "quarantine", "timers", "alembic_version"}


async def table_names(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_db_upgrade_creates_the_schema_and_a_second_run_changes_nothing(database_url: str) -> None:
    """`opsgate db upgrade` on an empty SQLite/PostgreSQL database creates every table; again is a no-op."""
    head = head_revision()
    assert await current_revision(database_url) is None
    code, output = await run_cli("db", "upgrade", env={"DATABASE_URL": database_url})
    assert code == 0, output
    assert f"database at revision {head}" in output
    assert TABLES <= await table_names(database_url)
    assert await current_revision(database_url) == head

    store = SqlStore.from_url(database_url)
    try:
        await store.set_state("kept", {"across": "upgrades"})
        code, output = await run_cli("db", "upgrade", env={"DATABASE_URL": database_url})
        assert code == 0, output
        assert f"database at revision {head}" in output
        assert await store.get_state("kept") == {"across": "upgrades"}
    finally:
        await store.close()
    assert await current_revision(database_url) == head


async def test_serve_on_a_fresh_sqlite_file_creates_the_schema(tmp_workdir: Path) -> None:
    """With no DATABASE_URL, `opsgate serve` creates ./opsgate.db with the schema and answers /healthz."""
    async with OpsgateProcess({}, cwd=tmp_workdir) as process:
        database = tmp_workdir / "opsgate.db"
        assert database.exists()
        with sqlite3.connect(database) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert TABLES <= tables
        assert revision == head_revision()
        assert journal == "wal"
        assert any("no approvers configured" in str(r.get("message")) for r in process.log_records())


@pytest.fixture(scope="module")
def unmigrated_postgres_runs() -> dict[str, tuple[int, str]]:
    """Exit code and output of serve, worker and threads list on an empty PostgreSQL database (run once)."""

    async def run_all() -> dict[str, tuple[int, str]]:
        async with postgres_database() as url:
            env = {"DATABASE_URL": url}
            serve, worker, listing = await asyncio.gather(
                run_cli("serve", "--port", str(free_port()), env=env, timeout=60),
                run_cli("worker", env=env, timeout=60),
                run_cli("threads", "list", env=env, timeout=60),
            )
            assert await current_revision(url) is None  # nothing was created behind the operator's back
        return {"serve": serve, "worker": worker, "threads list": listing}

    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(run_all())


@pytest.mark.parametrize("command", ["serve", "worker", "threads list"])
def test_postgres_without_upgrade_is_refused_naming_the_command(
    unmigrated_postgres_runs: dict[str, tuple[int, str]], command: str
) -> None:
    """On an empty PostgreSQL database each command exits non-zero telling to run `opsgate db upgrade`."""
    code, output = unmigrated_postgres_runs[command]
    assert code != 0, output
    assert "opsgate db upgrade" in output
    assert "DATABASE_URL" in output


def test_serve_reports_the_missing_schema_without_a_traceback(
    unmigrated_postgres_runs: dict[str, tuple[int, str]],
) -> None:
    """The start-up error for an un-migrated PostgreSQL is one clear line, like the other commands."""
    code, output = unmigrated_postgres_runs["serve"]
    assert code != 0
    assert "Traceback" not in output
    assert any(line.startswith("Error: DATABASE_URL") and "opsgate db upgrade" in line
               for line in output.splitlines())
