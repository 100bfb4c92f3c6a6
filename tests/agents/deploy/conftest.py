"""Fixtures of the deploy agent's tests: a migrated SQLite ledger and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from storage import SqlStore, upgrade


@pytest.fixture
async def ledger(sqlite_database_url: str) -> AsyncIterator[SqlStore]:
    """A store on a fresh, migrated SQLite database (the deployment ledger)."""
    await upgrade(sqlite_database_url)
    store = SqlStore.from_url(sqlite_database_url)
    yield store
    await store.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client like the runtime's."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client
