"""A channel whose outbound converter fails on an event does not block the thread or the other channels.

Real stores (SQLite and PostgreSQL); the channels are real Channel implementations, one of which has a bug on
messages containing "boom" (the way a converter can choke on an event it never expected).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

import pytest
from structlog.testing import capture_logs

from bot.channel import Channel
from bot.events import Event, UserMessage, new_id
from bot.journal import Journal
from bot.store import OutboxItem
from bot.thread import Thread
from storage import SqlStore, upgrade


class Echo(Channel):
    """Queues one message per user message."""

    name: ClassVar[str] = "echo"

    def outbound(self, thread: Thread, new: Sequence[Event]) -> list[OutboxItem]:
        return [OutboxItem(channel=self.name, payload={"text": e.text}) for e in new if isinstance(e, UserMessage)]


class Buggy(Echo):
    """Like Echo, but its converter raises on "boom"."""

    name: ClassVar[str] = "buggy"

    def outbound(self, thread: Thread, new: Sequence[Event]) -> list[OutboxItem]:
        if any(isinstance(e, UserMessage) and "boom" in e.text for e in new):
            raise KeyError("blocks")
        return super().outbound(thread, new)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    await upgrade(database_url)
    store = SqlStore.from_url(database_url)
    yield store
    await store.close()


async def test_a_failing_converter_skips_its_message_and_quarantines_it(store: SqlStore) -> None:
    """The events and the other channel's message are stored; the failing channel's message is quarantined."""
    journal = Journal(store, [Buggy(), Echo()])
    first = UserMessage(text="boom")
    with capture_logs() as logs:
        thread = await journal.create(Thread(id=new_id(), events=[first]))
        later = await journal.append(thread, [UserMessage(text="fine")])
    stored = await store.load_thread(thread.id)
    assert stored is not None and [e.type for e in stored.events] == ["user_message", "user_message"]
    assert later.seq == 2
    assert await store.outbox_pending("echo") == 2
    assert await store.outbox_pending("buggy") == 1  # the later, ordinary message still goes out
    [item] = await store.list_quarantine()
    assert (item.channel, item.key) == ("buggy", f"outbound:{thread.id}:{first.id}")
    [log] = [r for r in logs if r["event"] == "outbound_failed"]
    assert f"error id {log['error_id']}: KeyError" in (item.detail or "")
