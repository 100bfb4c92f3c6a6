"""Schema migrations through the real CLI: `opsgate db upgrade`, first-run SQLite, PostgreSQL without upgrade."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from unittest.mock import patch

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.errors import ConfigError
from storage import SqlStore
from storage.migrate import MIGRATIONS, current_revision, head_revision, upgrade
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


def _alembic_head(location: Path) -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(location))
    return ScriptDirectory.from_config(config).get_current_head()


async def _alembic_current(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    finally:
        await engine.dispose()


def test_the_head_read_from_the_files_is_alembics() -> None:
    """Start-up reads the head without importing alembic; it must be the head alembic would upgrade to."""
    assert head_revision() == _alembic_head(MIGRATIONS)


def test_a_second_head_is_an_error_not_a_guess(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    for name, revision, parent in (("a", "0001", None), ("b", "0002", "0001"), ("c", "0003", "0001")):
        down = f'"{parent}"' if parent else "None"
        (versions / f"{revision}_{name}.py").write_text(f'revision: str = "{revision}"\ndown_revision = {down}\n')
    head_revision.cache_clear()
    try:
        with patch("storage.migrate.MIGRATIONS", tmp_path), pytest.raises(RuntimeError, match="2 heads"):
            head_revision()
        (versions / "0003_c.py").write_text("revision = '0003'\ndown_revision: str | None = '0002'\n")
        head_revision.cache_clear()
        with patch("storage.migrate.MIGRATIONS", tmp_path):
            assert head_revision() == "0003" == _alembic_head(tmp_path)
    finally:
        head_revision.cache_clear()


async def test_the_current_revision_is_alembics_before_and_after_upgrade(database_url: str) -> None:
    assert await current_revision(database_url) is None is await _alembic_current(database_url)
    await upgrade(database_url, "0005")
    assert await current_revision(database_url) == "0005" == await _alembic_current(database_url)
    await upgrade(database_url)
    assert await current_revision(database_url) == head_revision() == await _alembic_current(database_url)


async def test_a_database_stamped_twice_is_refused(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0012')"))
    finally:
        await engine.dispose()
    with pytest.raises(ConfigError, match="several revisions"):
        await current_revision(database_url)
