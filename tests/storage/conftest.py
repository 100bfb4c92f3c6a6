"""Stores on a migrated database (SQLite file and PostgreSQL), each with its own engine and connections.

PostgreSQL: one throwaway database per module, migrated once and emptied before each test (fast and independent).
SQLite: a fresh file per test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from storage import SqlStore, upgrade
from storage.schema import metadata
from tests.support.databases import postgres_database, sqlite_url

StoreFactory = Callable[[], SqlStore]


@pytest.fixture(scope="module")
def postgres_module_url() -> Iterator[str]:
    """A migrated PostgreSQL database shared by one test module, dropped afterwards."""
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        database = postgres_database()
        url = runner.run(database.__aenter__())
        try:
            runner.run(upgrade(url))
            yield url
        finally:
            runner.run(database.__aexit__(None, None, None))


async def empty_tables(url: str) -> None:
    """Delete every row of opsgate's tables (the schema and its alembic revision stay)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                await conn.execute(table.delete())
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
async def migrated_url(request: pytest.FixtureRequest, tmp_path: Path, postgres_module_url: str) -> str:
    """An empty, migrated database: a fresh SQLite file, or the module's PostgreSQL database emptied."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "opsgate.db")
        await upgrade(url)
        return url
    await empty_tables(postgres_module_url)
    return postgres_module_url


@pytest.fixture
async def new_store(migrated_url: str) -> AsyncIterator[StoreFactory]:
    """Factory of SqlStore instances on the same database (separate engines, like separate processes)."""
    stores: list[SqlStore] = []

    def make() -> SqlStore:
        store = SqlStore.from_url(migrated_url)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
def store(new_store: StoreFactory) -> SqlStore:
    """One store on the migrated test database."""
    return new_store()
