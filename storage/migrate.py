"""Alembic migrations run from code: ``opsgate db upgrade``, and the first-run schema on a fresh SQLite file."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

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
