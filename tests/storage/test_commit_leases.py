"""Leasing a thread in the commit that makes it runnable: only when nobody holds it, and said truthfully."""

from __future__ import annotations

from bot.events import Done, UserMessage, Via
from bot.store import Lease
from storage import SqlStore
from tests.storage.conftest import StoreFactory
from tests.storage.test_sql_store import new_thread

MINE = Lease(owner="worker-a", seconds=60)


async def test_create_with_a_lease_holds_the_thread_for_its_owner(new_store: StoreFactory) -> None:
    """A running thread created with a lease is not claimable by another worker; a waiting one is not leased."""
    store, other = new_store(), new_store()
    thread = new_thread()
    assert await store.create_thread(thread, "running", lease=MINE) is True
    assert await other.claim_threads("worker-b", 60) == []
    assert await other.claim_one(thread.id, "worker-b", 60) is None
    assert await store.create_thread(new_thread(), "waiting_for_human", lease=MINE) is False
    assert await other.claim_threads("worker-b", 60) == []


async def test_append_leases_only_a_free_thread(store: SqlStore) -> None:
    """An append that makes a free thread runnable leases it; a thread another worker holds, or one the same
    worker already holds, is not reported as newly leased (so it is never run twice)."""
    thread = new_thread()
    await store.create_thread(thread, "waiting_for_human")
    said = [UserMessage(text="go on", user="bob", via=Via(channel="api"))]
    assert await store.append(thread.id, said, expected_seq=2, status="running", agent="deploy", lease=MINE)
    assert await store.claim_threads("worker-b", 60) == []  # held by worker-a
    # worker-a still holds it: a second running append does not hand it over again
    assert not await store.append(thread.id, said, expected_seq=3, status="running", agent="deploy", lease=MINE)
    await store.release_thread(thread.id, "worker-a")
    assert await store.claim_one(thread.id, "worker-b", 60) == 4
    # now worker-b holds it: worker-a's commit does not take it
    assert not await store.append(thread.id, said, expected_seq=4, status="running", agent="deploy", lease=MINE)
    # a stopping append drops every lease whatever was asked
    assert not await store.append(thread.id, [Done(message="ok")], expected_seq=5, status="done", agent="deploy",
                                  lease=MINE)
    assert await store.claim_one(thread.id, "worker-b", 60) is None


async def test_a_pending_retry_delay_is_respected(store: SqlStore) -> None:
    """A thread in back-off (model down) is not leased by a commit before its delay is over."""
    thread = new_thread()
    await store.create_thread(thread, "running")
    assert await store.claim_one(thread.id, "worker-b", 60) == 2
    await store.release_thread(thread.id, "worker-b", retry_in=300)
    said = [UserMessage(text="again", user="bob", via=Via(channel="api"))]
    assert not await store.append(thread.id, said, expected_seq=2, status="running", agent="deploy", lease=MINE)
    assert await store.claim_threads("worker-a", 60) == []
