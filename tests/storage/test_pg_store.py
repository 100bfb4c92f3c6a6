"""PostgreSQL's hot writes: how many statements a write sends, and that folding them loses nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import Conflict
from bot.events import ApprovalRequested, Done, UserMessage, new_id
from bot.store import NewTimer, OutboxItem, TimerChanges
from bot.thread import Thread
from storage import SqlStore
from storage.database import asyncpg_dsn
from storage.pg_store import PgHot
from storage.pg_writer import PgWriter
from tests.storage.conftest import empty_tables


class Logged:
    """A PostgreSQL store on one pooled connection whose queries are recorded."""

    def __init__(self, store: SqlStore, sent: list[str]) -> None:
        self.store, self.sent = store, sent

    def said(self) -> list[str]:
        """The queries sent since the last call, upper-cased (reads of the conflict check included)."""
        taken, self.sent[:] = [q.strip().upper() for q in self.sent], []
        return taken


@pytest.fixture
async def logged(postgres_module_url: str) -> AsyncIterator[Logged]:
    await empty_tables(postgres_module_url)
    store = SqlStore.from_url(postgres_module_url)
    assert isinstance(store.hot, PgHot)
    store.hot.writer = PgWriter(asyncpg_dsn(postgres_module_url), committers=1, pool_size=1)
    sent: list[str] = []
    async with (await store.hot.writer.pool()).acquire() as conn:
        conn.add_query_logger(lambda record: sent.append(record.query))
    try:
        yield Logged(store, sent)
    finally:
        await store.close()


def _timer(key: str, seconds: float = 3600) -> NewTimer:
    return NewTimer(kind="approval", key=key, due_at=datetime.now(UTC) + timedelta(seconds=seconds),
                    payload={"k": key})


def _request(approval_id: str) -> ApprovalRequested:
    return ApprovalRequested(approval_id=approval_id, action_id="a1", name="deploy", arguments={"v": 1})


async def test_an_append_that_schedules_timers_is_one_statement(logged: Logged) -> None:
    """A request for approval schedules its expiry: events, outbox rows and the timers in one statement, no
    BEGIN or COMMIT; what it wrote reads back whole, in order."""
    store = logged.store
    thread = Thread(id=new_id(), agent="deploy", events=[UserMessage(text="deploy v1")])
    await store.create_thread(thread, "running")
    warm = Thread(id=new_id(), agent="deploy", events=[UserMessage(text="warm")])  # types asked for once
    await store.create_thread(warm, "running")
    await store.append(warm.id, [_request("r0")], expected_seq=1, status="waiting_for_approval", agent="deploy",
                       outbox=[OutboxItem(channel="web", payload={"n": 0})],
                       timers=TimerChanges(schedule=[_timer("r0")]))
    logged.said()
    await store.append(thread.id, [_request("r1")], expected_seq=1, status="waiting_for_approval", agent="deploy",
                       outbox=[OutboxItem(channel="web", payload={"n": 1})],
                       timers=TimerChanges(schedule=[_timer("r1"), _timer("r1-remind", 60)]))
    said = logged.said()
    assert len(said) == 1 and "INSERT INTO TIMERS" in said[0], said
    timers = sorted(await store.list_timers(thread.id), key=lambda t: t.id)  # ids follow the order scheduled
    assert [(t.kind, t.key, t.status, t.payload) for t in timers] == [
        ("approval", "r1", "pending", {"k": "r1"}), ("approval", "r1-remind", "pending", {"k": "r1-remind"})]
    claimed = await store.claim_timers("w1", 10, 30)
    assert claimed == []  # not due
    loaded = await store.load_thread(thread.id)
    assert loaded is not None and [e.type for e in loaded.events] == ["user_message", "approval_requested"]
    assert await store.outbox_pending("web") == 2


async def test_a_thread_created_with_timers_is_one_statement(logged: Logged) -> None:
    store = logged.store
    # The first use of a statement on a connection also asks for its types (asyncpg, once): not counted.
    await store.create_thread(Thread(id=new_id(), events=[UserMessage(text="warm")]), "done",
                              timers=[_timer("t0")])
    logged.said()
    thread = Thread(id=new_id(), events=[UserMessage(text="hello")])
    await store.create_thread(thread, "done", timers=[_timer("t1", -1)])
    said = logged.said()
    assert len(said) == 1 and "INSERT INTO TIMERS" in said[0], said
    claimed = await store.claim_timers("w1", 10, 30)
    assert [(t.thread_id, t.key, t.payload) for t in claimed] == [(thread.id, "t1", {"k": "t1"})]


async def test_a_stale_append_schedules_nothing(logged: Logged) -> None:
    """The compare-and-set fails: no event, no outbox row and no timer of that append is stored."""
    store = logged.store
    thread = Thread(id=new_id(), agent="deploy", events=[UserMessage(text="deploy v1")])
    await store.create_thread(thread, "running")
    with pytest.raises(Conflict):
        await store.append(thread.id, [_request("r1")], expected_seq=0, status="waiting_for_approval", agent="deploy",
                           outbox=[OutboxItem(channel="web", payload={"n": 1})],
                           timers=TimerChanges(schedule=[_timer("r1")]))
    assert await store.list_timers(thread.id) == []
    assert await store.outbox_pending() == 0
    loaded = await store.load_thread(thread.id)
    assert loaded is not None and len(loaded.events) == 1


async def test_cancelling_and_firing_still_lock_the_timers_first(logged: Logged) -> None:
    """A decision cancels its request's timers before the thread row is updated (one lock order with a firing),
    in one transaction with the append; a timer scheduled under the cancelled key in the same append stays."""
    store = logged.store
    thread = Thread(id=new_id(), agent="deploy", events=[UserMessage(text="deploy v1")])
    await store.create_thread(thread, "waiting_for_approval", timers=[_timer("r1")])
    logged.said()
    await store.append(thread.id, [Done(message="ok")], expected_seq=1, status="waiting_for_approval", agent="deploy",
                       timers=TimerChanges(cancel=["r1"], schedule=[_timer("r1", 7200)]))
    said = logged.said()
    assert said[0].startswith("BEGIN") and said[-1].startswith("COMMIT"), said
    cancel = next(i for i, q in enumerate(said) if q.startswith("DELETE FROM TIMERS"))
    append = next(i for i, q in enumerate(said) if "UPDATE THREADS" in q)
    assert cancel < append, said
    timers = await store.list_timers(thread.id)
    assert len(timers) == 1 and timers[0].key == "r1"
    assert timers[0].due_at > datetime.now(UTC) + timedelta(seconds=3700)  # the new one, not the cancelled one
