"""The quarantine table on SQLite and PostgreSQL: one row per (channel, key), newest first, hostile data kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from bot.store import OutboxItem, QuarantineItem
from storage import SqlStore
from storage.schema import outbox


async def test_quarantine_is_idempotent_per_channel_and_key(store: SqlStore) -> None:
    """The first record of a (channel, key) wins; the same key on another channel is another row."""
    first = QuarantineItem(channel="email", key="INBOX:7:42", reason="unparseable mail", detail="boom", attempts=3)
    assert await store.quarantine(first)
    assert not await store.quarantine(first.model_copy(update={"reason": "again"}))
    assert await store.quarantine(QuarantineItem(channel="slack", key="INBOX:7:42", reason="other"))
    items = await store.list_quarantine()
    assert len(items) == 2
    kept = next(i for i in items if i.channel == "email")
    assert (kept.reason, kept.detail, kept.attempts) == ("unparseable mail", "boom", 3)


async def test_list_is_newest_first_and_limited(store: SqlStore) -> None:
    """list_quarantine returns the newest items first, at most ``limit``."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for n in range(5):
        await store.quarantine(QuarantineItem(channel="email", key=f"k{n}", reason="r", at=start + timedelta(hours=n)))
    items = await store.list_quarantine(limit=3)
    assert [i.key for i in items] == ["k4", "k3", "k2"]
    assert items[0].at == start + timedelta(hours=4)


async def test_hostile_and_oversized_values_are_stored_not_refused(store: SqlStore) -> None:
    """NUL, lone surrogates and values longer than their columns never make quarantining fail."""
    long_key = "<" + "x" * 5000 + "@example.com>"
    item = QuarantineItem(channel="e" * 100, key=long_key, reason="r\x00" * 400, detail="\ud800" * 50_000)
    assert await store.quarantine(item)
    assert not await store.quarantine(QuarantineItem(channel="e" * 100, key=long_key, reason="again"))
    other = long_key[:-5] + "y.com>"  # same start, different end: still a different key
    assert await store.quarantine(QuarantineItem(channel="e" * 100, key=other, reason="r"))
    stored = await store.list_quarantine()
    assert len(stored) == 2
    assert all(len(i.key) <= 255 and len(i.channel) <= 32 and len(i.reason) <= 255 for i in stored)
    assert stored[0].reason.startswith("r\ufffd") or stored[1].reason.startswith("r\ufffd")
    assert {len(i.detail or "") for i in stored} >= {10_000}


async def test_a_row_with_an_unreadable_payload_is_claimed_with_its_problem(store: SqlStore) -> None:
    """Rows whose payload is not a JSON object come back with ``problem`` set; the rows around them are normal."""
    await store.add_outbox([OutboxItem(channel="slack", payload={"n": 1})])
    async with store.engine.begin() as conn:
        for payload in ("{not json", "[1, 2]"):
            await conn.execute(insert(outbox).values(channel="slack", payload=payload, status="pending", attempts=0,
                                                     next_attempt_at=0.0, created_at=0.0))
    await store.add_outbox([OutboxItem(channel="slack", payload={"n": 2})])
    rows = await store.claim_outbox("slack", 10, lease_seconds=60)
    assert [(r.payload, r.problem is None) for r in rows] == [
        ({"n": 1}, True), ({}, False), ({}, False), ({"n": 2}, True)]
    assert "not valid JSON" in (rows[1].problem or "") and "list" in (rows[2].problem or "")
