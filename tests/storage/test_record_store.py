"""Agents' records (the generic store behind a deploy ledger, grants and schedule claims) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.store import Record
from storage import SqlStore


@pytest.fixture
def store(new_store) -> SqlStore:  # type: ignore[no-untyped-def]
    """One store on the migrated test database."""
    return new_store()


def record(key: str, tag: str | None = "api", minutes_ago: int = 0, **body: object) -> Record:
    return Record(owner="ledger-owner", kind="entry", key=key, tag=tag, body=dict(body),
                  at=datetime.now(UTC) - timedelta(minutes=minutes_ago))


async def test_a_known_key_is_not_written_again(store: SqlStore) -> None:
    """add_record is insert-if-absent: the first body stays, the second add says False."""
    assert await store.add_record(record("k1", version="1.0.0"))
    assert not await store.add_record(record("k1", version="9.9.9"))
    found = await store.get_record("ledger-owner", "entry", "k1")
    assert found is not None and found.body == {"version": "1.0.0"} and found.tag == "api"
    assert await store.get_record("someone-else", "entry", "k1") is None


async def test_lists_are_newest_first_per_owner_kind_and_tag(store: SqlStore) -> None:
    """list_records orders by time, filters by tag, honours the limit and never mixes owners."""
    await store.add_record(record("k1", minutes_ago=30))
    await store.add_record(record("k2", tag="billing", minutes_ago=20))
    await store.add_record(record("k3", minutes_ago=10))
    await store.add_record(Record(owner="other", kind="entry", key="k4", tag="api"))
    assert [r.key for r in await store.list_records("ledger-owner", "entry")] == ["k3", "k2", "k1"]
    assert [r.key for r in await store.list_records("ledger-owner", "entry", tag="api")] == ["k3", "k1"]
    assert [r.key for r in await store.list_records("ledger-owner", "entry", limit=1)] == ["k3"]
    assert await store.list_records("ledger-owner", "entry", tag="unknown") == []


async def test_replace_is_compare_and_set(store: SqlStore) -> None:
    """Of two writers replacing the same version of a record, exactly one wins; None inserts if absent."""
    assert await store.replace_record(record("g1", state="active"), expected=None)
    assert not await store.replace_record(record("g1", state="other"), expected=None)
    current = await store.get_record("ledger-owner", "entry", "g1")
    assert current is not None
    outcomes = await asyncio.gather(
        store.replace_record(record("g1", state="revoked", by="a"), expected=current),
        store.replace_record(record("g1", state="revoked", by="b"), expected=current),
    )
    assert sorted(outcomes) == [False, True]
    final = await store.get_record("ledger-owner", "entry", "g1")
    assert final is not None and final.body["state"] == "revoked"
