"""Timers in the store: scheduled, cancelled and fired inside a thread's append; claimed with leases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import Conflict, TimerGone
from bot.events import Done, UserMessage, new_id
from bot.store import NewTimer, TimerChanges
from bot.thread import Thread
from storage import SqlStore
from tests.storage.conftest import StoreFactory


def _timer(seconds: float, key: str = "a1", kind: str = "test") -> NewTimer:
    return NewTimer(kind=kind, due_at=datetime.now(UTC) + timedelta(seconds=seconds), key=key, payload={"n": 1})


async def _thread(store: SqlStore, *timers: NewTimer) -> Thread:
    thread = Thread(id=new_id(), events=[UserMessage(text="hello")])
    await store.create_thread(thread, "done", timers=timers)
    return thread


async def _ids(store: SqlStore, thread: Thread) -> dict[str, int]:
    """The database's ids of a thread's timers, by key."""
    return {t.key: t.id for t in await store.list_timers(thread.id)}


async def test_a_timer_scheduled_with_a_thread_is_claimed_once_due(store: SqlStore) -> None:
    """A timer created with its thread is not claimed before its due time, then once (leased), with its payload."""
    due, later = _timer(-1), _timer(3600, key="b")
    thread = await _thread(store, due, later)
    claimed = await store.claim_timers("w1", 10, 30)
    assert [(t.id, t.thread_id, t.kind, t.key, t.payload, t.attempts) for t in claimed] == [
        ((await _ids(store, thread))["a1"], thread.id, "test", "a1", {"n": 1}, 0)]
    assert abs(claimed[0].due_at.timestamp() - due.due_at.timestamp()) < 1e-3
    assert await store.claim_timers("w2", 10, 30) == []  # leased to w1
    next_due = await store.next_timer_due()
    assert next_due is not None and abs(next_due - later.due_at.timestamp()) < 1e-3


async def test_firing_appends_the_events_and_a_second_firing_writes_nothing(store: SqlStore) -> None:
    """The append that fires a timer deletes it; firing it again raises TimerGone and appends nothing."""
    thread = await _thread(store, _timer(-1))
    fire = TimerChanges(fired=(await _ids(store, thread))["a1"])
    await store.append(thread.id, [Done(message="fired")], expected_seq=1, status="done", agent=None, timers=fire)
    with pytest.raises(TimerGone):
        await store.append(thread.id, [Done(message="again")], expected_seq=2, status="done", agent=None,
                           timers=fire)
    loaded = await store.load_thread(thread.id)
    assert loaded is not None and [e.type for e in loaded.events] == ["user_message", "done"]
    assert await store.list_timers(thread.id) == []  # a fired timer leaves no row
    assert await store.claim_timers("w1", 10, 30) == []


async def test_a_conflicting_append_leaves_its_timer_pending(store: SqlStore) -> None:
    """When the thread changed meanwhile, the firing append is rolled back whole: the timer stays pending."""
    thread = await _thread(store, _timer(-1))
    with pytest.raises(Conflict):
        await store.append(thread.id, [Done(message="x")], expected_seq=0, status="done", agent=None,
                           timers=TimerChanges(fired=(await _ids(store, thread))["a1"]))
    [state] = await store.list_timers(thread.id)
    assert state.status == "pending"


async def test_an_append_cancels_by_key_and_schedules_in_one_transaction(store: SqlStore) -> None:
    """Cancelling a key deletes that thread's pending timers with it (not others); new ones with the key stay."""
    thread = await _thread(store, _timer(-1), _timer(60), _timer(-1, key="other"))
    unrelated = await _thread(store, _timer(-1))
    before = await store.list_timers(thread.id)  # by due time: a1 (now), other (now), a1 (in a minute)
    first, other = before[0].id, before[1].id
    await store.append(thread.id, [Done(message="decided")], expected_seq=1, status="done", agent=None,
                       timers=TimerChanges(cancel=["a1"], schedule=[_timer(120)]))
    states = [(t.id == other, t.key, t.status) for t in await store.list_timers(thread.id)]
    assert states == [(True, "other", "pending"), (False, "a1", "pending")]  # cancelled timers leave no row
    assert [t.status for t in await store.list_timers(unrelated.id)] == ["pending"]
    with pytest.raises(TimerGone):  # a cancelled timer never fires
        await store.append(thread.id, [Done(message="late")], expected_seq=2, status="done", agent=None,
                           timers=TimerChanges(fired=first))


async def test_retry_hides_a_timer_until_its_delay_and_failed_ones_stay_closed(store: SqlStore) -> None:
    """timer_retry delays the next claim and counts attempts; timer_failed keeps a closed row, timer_done none."""
    thread = await _thread(store, _timer(-1, key="r"), _timer(-1, key="f"), _timer(-1, key="s"))
    ids = await _ids(store, thread)
    retried, failed, stale = ids["r"], ids["f"], ids["s"]
    assert len(await store.claim_timers("w1", 10, 30)) == 3
    await store.timer_retry(retried, 0.0, "boom")
    await store.timer_failed(failed, "no handler")
    assert await store.timer_done(stale) is True
    assert await store.timer_done(stale) is False
    [again] = await store.claim_timers("w2", 10, 30)
    assert (again.id, again.attempts) == (retried, 1)
    states = {t.id: (t.status, t.last_error) for t in await store.list_timers(thread.id)}
    assert states == {failed: ("failed", "no handler"), retried: ("pending", "boom")}


async def test_two_stores_claiming_at_once_never_share_a_timer(new_store: StoreFactory) -> None:
    """Concurrent claimers (separate connections, like separate workers) split the due timers between them."""
    first, second = new_store(), new_store()
    timers = [_timer(-1, key=str(i)) for i in range(40)]
    await _thread(first, *timers)
    ids: list[str] = []
    for _ in range(20):  # a claimer skips rows another one holds: go on until a round finds nothing
        claims = await asyncio.gather(*[store.claim_timers(f"w{i}", 7, 30)
                                        for i, store in enumerate([first, second] * 4)])
        if not any(claims):
            break
        ids += [t.id for claim in claims for t in claim]
    assert len(ids) == len(set(ids)) == 40


async def test_fired_and_cancelled_timers_leave_no_rows(store: SqlStore) -> None:
    """After a firing, a stale close and a cancel, the timers table holds only the failed timer of the thread."""
    thread = await _thread(store, _timer(-1, key="f"), _timer(-1, key="s"), _timer(60, key="c"), _timer(-1, key="x"))
    ids = await _ids(store, thread)
    await store.append(thread.id, [Done(message="fired")], expected_seq=1, status="done", agent=None,
                       timers=TimerChanges(fired=ids["f"], cancel=["c"]))
    assert await store.timer_done(ids["s"]) is True
    await store.timer_failed(ids["x"], "no handler")
    assert [(t.id, t.status) for t in await store.list_timers(thread.id)] == [(ids["x"], "failed")]
    assert await store.claim_timers("w1", 10, 30) == [] and await store.next_timer_due() is None
