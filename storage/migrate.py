"""Alembic migrations run from code: ``opsgate db upgrade``, and the first-run schema on a fresh SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, make_url

from bot.errors import ConfigError
from storage.database import create_engine, is_sqlite

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config("sqlite://")).get_current_head()
    assert head is not None
    return head


async def current_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    finally:
        await engine.dispose()


async def upgrade(url: str, revision: str = "head") -> str:
    """Apply migrations up to ``revision``; return the revision now in the database."""
    config = _config(url)
    engine = create_engine(url)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()
    return await current_revision(url) or ""


async def ensure_schema(url: str) -> str:
    """Make sure the schema is current: SQLite is upgraded automatically; PostgreSQL must be upgraded explicitly."""
    current = await current_revision(url)
    head = head_revision()
    if current == head:
        return head
    if is_sqlite(url):
        return await upgrade(url)
    raise ConfigError(
        f"DATABASE_URL: the database schema is at {current or 'nothing'} but opsgate needs {head}; "
        "run `opsgate db upgrade` first"
    )


def describe_url(url: str) -> str:
    """DATABASE_URL as it can be shown: the password hidden, a SQLite file as its absolute path."""
    parsed = make_url(url)
    if is_sqlite(url) and parsed.database and parsed.database != ":memory:":
        return f"{url} (the file {Path(parsed.database).resolve()})"
    return parsed.render_as_string(hide_password=True)


async def ensure_existing_schema(url: str) -> str:
    """``ensure_schema`` for commands that only read: never creates a database; ConfigError says what was looked at."""
    parsed = make_url(url)
    if is_sqlite(url):
        file = Path(parsed.database) if parsed.database and parsed.database != ":memory:" else None
        if file is not None and not await asyncio.to_thread(file.exists):
            raise ConfigError(
                f"no opsgate database at DATABASE_URL={describe_url(url)}, so nothing to show. Run the command "
                "in the folder where `opsgate serve` runs, or set DATABASE_URL to its database")
        return await ensure_schema(url)
    try:
        current = await current_revision(url)
    except Exception as exc:  # any driver error: the user needs the URL and the reason, not a traceback
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ConfigError(f"cannot read DATABASE_URL={describe_url(url)}: {reason}") from None
    if current is None:
        raise ConfigError(f"DATABASE_URL={describe_url(url)} has no opsgate schema, so nothing to show; "
                          "run `opsgate db upgrade` to create it")
    return await ensure_schema(url)
