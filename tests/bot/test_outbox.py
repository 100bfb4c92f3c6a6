"""The outbox dispatcher against a real store (SQLite and PostgreSQL): poison rows are quarantined, nothing waits.

The channel here is a real Channel implementation that records what it delivers and fails for payloads marked
``poison`` (the way a channel with a bug, or a payload it chokes on, fails).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
from sqlalchemy import insert, select
from structlog.testing import capture_logs

from bot.channel import Channel
from bot.errors import DeliveryFailed, DeliveryRetry
from bot.events import ErrorEvent, UserMessage, new_id
from bot.journal import Journal
from bot.outbox import OutboxDispatcher
from bot.store import OutboxItem, OutboxRow
from bot.thread import Thread
from storage import SqlStore, upgrade
from storage.schema import outbox


class Recording(Channel):
    """Delivers by recording; a ``poison`` payload raises, ``refuse`` is refused, ``later`` asks to retry."""

    name: ClassVar[str] = "rec"

    def __init__(self) -> None:
        self.delivered: list[int] = []

    async def deliver(self, row: OutboxRow) -> None:
        if row.payload.get("poison"):
            raise KeyError("text")
        if row.payload.get("refuse"):
            raise DeliveryFailed("channel_not_found")
        if row.payload.get("later"):
            raise DeliveryRetry("try later", retry_after=3600)
        if row.payload.get("hang"):
            await asyncio.sleep(3600)
        self.delivered.append(int(row.payload["n"]))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    await upgrade(database_url)
    store = SqlStore.from_url(database_url)
    yield store
    await store.close()


async def run_until(dispatcher: OutboxDispatcher, seconds: float = 1.5) -> None:
    """Run the dispatcher's loops for ``seconds`` (it is a forever loop), then stop it."""
    task = asyncio.create_task(dispatcher.run())
    try:
        await asyncio.sleep(seconds)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def new_thread(store: SqlStore) -> str:
    thread = Thread(id=new_id(), events=[UserMessage(text="hello")])
    await store.create_thread(thread, "done")
    return thread.id


async def statuses(store: SqlStore) -> dict[int, str]:
    async with store.engine.connect() as conn:
        return {r.id: r.status for r in await conn.execute(select(outbox.c.id, outbox.c.status).order_by(outbox.c.id))}


async def test_a_poison_row_among_good_ones_is_quarantined_and_the_rest_are_delivered(store: SqlStore) -> None:
    """Good rows around a poison row, a refused row and two unreadable payloads are all delivered in order."""
    thread_id = await new_thread(store)
    channel = Recording()
    await store.add_outbox([OutboxItem(channel="rec", payload={"n": 1}),
                            OutboxItem(channel="rec", thread_id=thread_id, payload={"poison": True}),
                            OutboxItem(channel="rec", payload={"n": 2}),
                            OutboxItem(channel="rec", thread_id=thread_id, payload={"refuse": True})])
    async with store.engine.begin() as conn:
        for payload in ("{not json", '"a string"'):
            await conn.execute(insert(outbox).values(channel="rec", thread_id=thread_id, payload=payload,
                                                     status="pending", attempts=0, next_attempt_at=0.0, created_at=0.0))
    await store.add_outbox([OutboxItem(channel="rec", payload={"n": 3})])

    dispatcher = OutboxDispatcher(store, Journal(store), [channel], poll_interval=0.05, max_attempts=1)
    with capture_logs() as logs:
        await run_until(dispatcher)

    assert channel.delivered == [1, 2, 3]
    assert list((await statuses(store)).values()) == ["sent", "failed", "sent", "failed", "failed", "failed", "sent"]
    quarantined = {i.key: i for i in await store.list_quarantine()}
    assert set(quarantined) == {"outbox:2", "outbox:4", "outbox:5", "outbox:6"}
    assert quarantined["outbox:2"].reason == "outbox delivery: gave up after 1 unexpected failure"
    assert "KeyError" in (quarantined["outbox:2"].detail or "")
    assert "not valid JSON" in (quarantined["outbox:5"].detail or "")
    assert {log["key"] for log in logs if log["event"] == "quarantined"} == set(quarantined)

    thread = await store.load_thread(thread_id)
    assert thread is not None
    errors = [e.message for e in thread.events if isinstance(e, ErrorEvent)]
    assert len(errors) == 4 and all(e.startswith("rec delivery failed") for e in errors)
    assert not any("KeyError" in e for e in errors)  # the exception stays in the log and the quarantine
    assert "channel_not_found" in errors[1]


async def test_an_unexpected_failure_below_the_limit_is_retried_not_quarantined(store: SqlStore) -> None:
    """The first unexpected failure of a row with attempts left reschedules it; nothing is quarantined yet."""
    await store.add_outbox([OutboxItem(channel="rec", payload={"poison": True}),
                            OutboxItem(channel="rec", payload={"later": True}),
                            OutboxItem(channel="rec", payload={"n": 1})])
    channel = Recording()
    dispatcher = OutboxDispatcher(store, Journal(store), [channel], poll_interval=0.05, max_attempts=3)
    await run_until(dispatcher, seconds=0.5)
    assert channel.delivered == [1]
    assert list((await statuses(store)).values()) == ["pending", "pending", "sent"]
    assert await store.list_quarantine() == []


async def test_a_hanging_delivery_is_abandoned_and_later_rows_go_out(store: SqlStore) -> None:
    """A delivery that never returns is cut off at the delivery timeout; the next row is delivered."""
    await store.add_outbox([OutboxItem(channel="rec", payload={"hang": True}),
                            OutboxItem(channel="rec", payload={"n": 1})])
    channel = Recording()
    dispatcher = OutboxDispatcher(store, Journal(store), [channel], poll_interval=0.05, max_attempts=1,
                                  delivery_timeout=0.2)
    await run_until(dispatcher, seconds=3.0)  # generous: a loaded machine must not make it flaky
    assert channel.delivered == [1]
    [item] = await store.list_quarantine()
    assert "longer than 0.2 s" in (item.detail or "")


async def test_the_row_is_quarantined_on_its_last_allowed_attempt(store: SqlStore) -> None:
    """With two attempts allowed, the first unexpected failure is retried (after ~1 s), the second quarantines."""
    await store.add_outbox([OutboxItem(channel="rec", payload={"poison": True})])
    dispatcher = OutboxDispatcher(store, Journal(store), [Recording()], poll_interval=0.05, max_attempts=2)
    await run_until(dispatcher, seconds=2.5)
    [item] = await store.list_quarantine()
    assert (item.key, item.attempts) == ("outbox:1", 2)
    assert item.reason == "outbox delivery: gave up after 2 unexpected failures"
    assert list((await statuses(store)).values()) == ["failed"]
