"""Alembic migrations run from code: ``opsgate db upgrade``, and the first-run schema on a fresh SQLite file."""

from __future__ import annotations

import asyncio
import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url

from bot.errors import ConfigError
from storage.database import create_engine, is_sqlite

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"

# Alembic is imported only to upgrade: it costs ~0.55 s of CPU, and every `opsgate worker`, `serve` and CLI
# command checks the revision on start. The check reads what alembic reads: each migration file's revision and
# down_revision, and the database's alembic_version row (tests/storage/test_migrations.py compares both with
# alembic's own answers).
_REVISION = re.compile(r'^(down_revision|revision)\s*(?::[^=]+)?=\s*(?:"([^"]*)"|\'([^\']*)\'|None)', re.MULTILINE)


def _config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@functools.cache
def head_revision() -> str:
    """The newest migration's revision: the one no other migration names as its down_revision."""
    parents: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = {name: quoted or single or None for name, quoted, single in _REVISION.findall(path.read_text())}
        revision = found.get("revision")
        if revision:
            parents[revision] = found.get("down_revision")
    heads = set(parents) - set(parents.values())
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {MIGRATIONS / 'versions'} have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def _stamped(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    rows = [row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))]
    if len(rows) > 1:
        raise ConfigError(f"DATABASE_URL: the database is stamped with several revisions {sorted(rows)}; "
                          "opsgate's migrations have one head")
    return rows[0] if rows else None


async def current_revision(url: str) -> str | None:
    """The revision the database is at (its alembic_version row), None before any migration."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_stamped)
    finally:
        await engine.dispose()


async def upgrade(url: str, revision: str = "head") -> str:
    """Apply migrations up to ``revision``; return the revision now in the database."""
    from alembic import command

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
