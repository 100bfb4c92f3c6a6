"""The SQL store on SQLite and PostgreSQL: compare-and-set appends, refs, outbox, state, ledger, audit, leases."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import Conflict, DuplicateRef, ThreadNotFound
from bot.events import (
    AUDIT_TYPES,
    ActionProposed,
    ActionResult,
    AgentSelected,
    ApprovalDecided,
    ApprovalRequested,
    DecisionRefused,
    Done,
    ExecutionStarted,
    UserMessage,
    Via,
    new_id,
)
from bot.store import OutboxItem, Ref
from bot.thread import Thread, ThreadStatus
from storage import SqlStore
from tests.storage.conftest import StoreFactory

WAITING: tuple[ThreadStatus, ...] = ("waiting_for_approval", "waiting_for_human", "done", "failed")


def new_thread(text: str = "deploy api 1.4.2", user: str = "bob@example.com") -> Thread:
    return Thread(id=new_id(), agent="deploy", events=[
        UserMessage(text=text, user=user, via=Via(channel="slack", conversation="C1")), AgentSelected(agent="deploy"),
    ])


async def create(
    store: SqlStore, status: ThreadStatus = "running", *, refs: Sequence[Ref] = (),
    outbox: Sequence[OutboxItem] = (), text: str = "deploy api 1.4.2",
) -> Thread:
    thread = new_thread(text)
    await store.create_thread(thread, status, refs=refs, outbox=outbox)
    return thread


def item(channel: str, n: int) -> OutboxItem:
    return OutboxItem(channel=channel, payload={"n": n})


# --- threads and events -----------------------------------------------------------------------------------


async def test_thread_round_trip_keeps_typed_events_in_order(store: SqlStore) -> None:
    """A created thread loads back with the same typed events, agent and timestamps."""
    thread = await create(store)
    loaded = await store.load_thread(thread.id)
    assert loaded is not None
    assert loaded.agent == "deploy"
    assert [e.model_dump() for e in loaded.events] == [e.model_dump() for e in thread.events]
    assert isinstance(loaded.events[0], UserMessage) and loaded.events[0].via.conversation == "C1"
    assert loaded.created_at is not None and loaded.updated_at is not None
    assert await store.load_thread("nope") is None
    assert await store.load_thread("x" * 2000) is None  # longer than the id column: simply not found


async def test_append_is_compare_and_set_on_the_sequence(store: SqlStore) -> None:
    """Appending with the current seq works; a stale seq raises Conflict and writes nothing."""
    thread = await create(store)
    proposal = ActionProposed(name="list_deployments", arguments={})
    await store.append(thread.id, [proposal], expected_seq=2, status="running", agent="deploy")
    with pytest.raises(Conflict):
        await store.append(thread.id, [Done(message="late")], expected_seq=2, status="done", agent="deploy")
    loaded = await store.load_thread(thread.id)
    assert loaded is not None
    assert [e.type for e in loaded.events] == ["user_message", "agent_selected", "action_proposed"]
    assert (await store.list_threads())[0].status == "running"
    with pytest.raises(ThreadNotFound):
        await store.append("nope", [Done(message="x")], expected_seq=0, status="done", agent=None)


async def test_concurrent_appends_from_two_connections_one_wins(new_store: StoreFactory) -> None:
    """Two writers appending at the same seq through separate engines: exactly one wins."""
    first, second = new_store(), new_store()
    for _ in range(5):
        thread = await create(first)
        outcomes = await asyncio.gather(
            first.append(thread.id, [Done(message="a")], expected_seq=2, status="done", agent="deploy"),
            second.append(thread.id, [Done(message="b")], expected_seq=2, status="done", agent="deploy"),
            return_exceptions=True,
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "bool"], outcomes
        loaded = await second.load_thread(thread.id)
        assert loaded is not None and len(loaded.events) == 3


async def test_list_and_count_threads_by_status(store: SqlStore) -> None:
    """Threads list newest-updated first, filter by status, page, and count per status."""
    running = await create(store, text="first")
    waiting = await create(store, "waiting_for_approval", text="second")
    done = await create(store, "done", text="third")
    await store.append(running.id, [ActionProposed(name="list_deployments", arguments={})], expected_seq=2,
                       status="running", agent="deploy")
    assert [t.id for t in await store.list_threads()] == [running.id, done.id, waiting.id]
    assert [t.id for t in await store.list_threads("waiting_for_approval")] == [waiting.id]
    assert [t.id for t in await store.list_threads(limit=1, offset=1)] == [done.id]
    summary = (await store.list_threads("done"))[0]
    assert (summary.title, summary.requester, summary.agent) == ("third", "bob@example.com", "deploy")
    assert await store.count_threads() == {"running": 1, "waiting_for_approval": 1, "done": 1}


# --- refs -----------------------------------------------------------------------------------------------


async def test_duplicate_ref_on_create_writes_nothing(store: SqlStore) -> None:
    """A thread whose ref is known raises DuplicateRef; none of its events, refs or outbox rows are stored."""
    first = await create(store, refs=[Ref(channel="slack-event", key="Ev1")], outbox=[item("slack", 1)])
    retried = new_thread()
    with pytest.raises(DuplicateRef):
        await store.create_thread(
            retried, "running",
            refs=[Ref(channel="slack-ts", key="C1:171.1", data={"x": 1}), Ref(channel="slack-event", key="Ev1")],
            outbox=[item("slack", 2)],
        )
    assert await store.load_thread(retried.id) is None
    assert await store.get_ref("slack-ts", "C1:171.1") is None
    assert await store.outbox_pending() == 1
    assert [t.id for t in await store.list_threads()] == [first.id]
    ref = await store.get_ref("slack-event", "Ev1")
    assert ref is not None and ref.thread_id == first.id


async def test_duplicate_ref_on_append_writes_nothing(store: SqlStore) -> None:
    """Appending with a known ref raises DuplicateRef and leaves the thread as it was."""
    thread = await create(store, refs=[Ref(channel="email", key="<a@x>")])
    with pytest.raises(DuplicateRef):
        await store.append(thread.id, [UserMessage(text="again")], expected_seq=2, status="running",
                           agent="deploy", refs=[Ref(channel="email", key="<a@x>")], outbox=[item("email", 1)])
    loaded = await store.load_thread(thread.id)
    assert loaded is not None and len(loaded.events) == 2
    assert await store.outbox_pending() == 0
    await store.append(thread.id, [UserMessage(text="again")], expected_seq=2, status="running", agent="deploy")


async def test_put_and_get_ref_with_data(store: SqlStore) -> None:
    """put_ref records once (False the second time, data unchanged); get_ref returns thread id and data."""
    thread = await create(store)
    assert await store.put_ref(Ref(channel="slack-ts", key="C1:1.2", thread_id=thread.id, data={"root": "1.2"}))
    assert not await store.put_ref(Ref(channel="slack-ts", key="C1:1.2", thread_id="other", data={"root": "x"}))
    ref = await store.get_ref("slack-ts", "C1:1.2")
    assert ref == Ref(channel="slack-ts", key="C1:1.2", thread_id=thread.id, data={"root": "1.2"})
    assert await store.get_ref("slack-ts", "C1:9.9") is None
    assert await store.get_ref("email", "C1:1.2") is None
    longest = "<" + "m" * 241 + "@example.com>"  # refs keys hold up to 255 characters on every backend
    assert len(longest) == 255
    assert await store.put_ref(Ref(channel="email", key=longest, thread_id=thread.id))
    assert (await store.get_ref("email", longest)) == Ref(channel="email", key=longest, thread_id=thread.id)


# --- outbox ---------------------------------------------------------------------------------------------


async def test_outbox_rows_are_claimed_in_order_per_channel_and_hidden_while_leased(store: SqlStore) -> None:
    """Rows come out oldest first for their channel only; claimed rows are invisible until the lease ends."""
    thread = await create(store, outbox=[item("slack", 1), item("email", 2), item("slack", 3)])
    await store.append(thread.id, [UserMessage(text="more")], expected_seq=2, status="running", agent="deploy",
                       outbox=[item("slack", 4)])
    rows = await store.claim_outbox("slack", 2, lease_seconds=60)
    assert [r.payload["n"] for r in rows] == [1, 3]
    assert all(r.thread_id == thread.id and r.attempts == 0 for r in rows)
    assert [r.payload["n"] for r in await store.claim_outbox("slack", 10, lease_seconds=60)] == [4]
    assert await store.claim_outbox("slack", 10, lease_seconds=60) == []
    assert [r.payload["n"] for r in await store.claim_outbox("email", 10, lease_seconds=0.2)] == [2]
    await asyncio.sleep(0.3)
    again = await store.claim_outbox("email", 10, lease_seconds=60)
    assert [(r.payload["n"], r.attempts) for r in again] == [(2, 1)]


async def test_outbox_retry_failed_and_sent(store: SqlStore) -> None:
    """retry makes a row due again after the delay; failed and sent rows are never claimed again."""
    await create(store, outbox=[item("slack", n) for n in range(4)])
    rows = await store.claim_outbox("slack", 10, lease_seconds=60)
    ids = [r.id for r in rows]
    assert ids == sorted(ids)
    await store.outbox_retry(ids[0], 0, "429 ratelimited")
    await store.outbox_retry(ids[1], 60, "connection reset")
    await store.outbox_failed(ids[2], "channel_not_found")
    await store.outbox_sent(ids[3])
    assert await store.outbox_pending("slack") == 2  # the two retried rows
    assert await store.outbox_pending("email") == 0
    due = await store.claim_outbox("slack", 10, lease_seconds=60)
    assert [(r.id, r.attempts) for r in due] == [(ids[0], 1)]
    await store.outbox_sent(ids[0])
    assert await store.outbox_pending() == 1


# --- state and ledger ------------------------------------------------------------------------------------


async def test_state_get_and_set_json_values(store: SqlStore) -> None:
    """State keys hold JSON values; set overwrites; unknown keys are None."""
    assert await store.get_state("imap:INBOX") is None
    await store.set_state("imap:INBOX", {"uidvalidity": 5, "last_uid": 10, "seen": [1, 2]})
    await store.set_state("other", "text")
    assert await store.get_state("imap:INBOX") == {"uidvalidity": 5, "last_uid": 10, "seen": [1, 2]}
    await store.set_state("imap:INBOX", {"uidvalidity": 6, "last_uid": 0})
    assert await store.get_state("imap:INBOX") == {"uidvalidity": 6, "last_uid": 0}
    assert await store.get_state("other") == "text"
    await store.set_state("flag", False)
    assert await store.get_state("flag") is False


# --- audit ----------------------------------------------------------------------------------------------


async def test_audit_yields_decisions_and_executions_since_a_time(store: SqlStore) -> None:
    """The audit iterates only the audit event types, oldest first, with the thread's agent, after ``since``."""
    old = datetime(2024, 1, 1, tzinfo=UTC)
    thread = new_thread()
    proposal = ActionProposed(name="deploy", arguments={"version": "1"}, at=old)
    request = ApprovalRequested(action_id=proposal.action_id, name="deploy", arguments={"version": "1"}, at=old)
    thread = thread.with_events([proposal, request])
    await store.create_thread(thread, "waiting_for_approval")
    later = [
        DecisionRefused(approval_id=request.approval_id, by="mallory", reason="not an approver"),
        ApprovalDecided(approval_id=request.approval_id, action_id=proposal.action_id, approved=True, by="alice"),
        ExecutionStarted(action_id=proposal.action_id, name="deploy", arguments={"version": "1"},
                         idempotency_key="k", approved_by="alice"),
        ActionResult(action_id=proposal.action_id, name="deploy", result="ok"),
        Done(message="done"),
    ]
    await store.append(thread.id, later, expected_seq=4, status="done", agent="deploy")
    everything = [r async for r in store.audit(None, AUDIT_TYPES)]
    assert [r.event.type for r in everything] == [
        "approval_requested", "decision_refused", "approval_decided", "execution_started", "action_result"]
    assert {(r.thread_id, r.agent) for r in everything} == {(thread.id, "deploy")}
    recent = [r async for r in store.audit(old + timedelta(days=1), AUDIT_TYPES)]
    assert [r.event.type for r in recent] == [
        "decision_refused", "approval_decided", "execution_started", "action_result"]
    only = [r async for r in store.audit(None, ["approval_decided"])]
    assert len(only) == 1 and isinstance(only[0].event, ApprovalDecided) and only[0].event.by == "alice"


# --- worker leases --------------------------------------------------------------------------------------


async def test_concurrent_claimers_never_claim_the_same_thread(new_store: StoreFactory) -> None:
    """8 claimers on separate engines over 200 runnable threads, taking 1 to 8 at a time: every thread is claimed
    exactly once."""
    setup = new_store()
    ids = {(await create(setup)).id for _ in range(200)}
    await create(setup, "waiting_for_approval")

    async def claimer(n: int) -> list[str]:
        store = new_store()
        claimed = []
        while batch := await store.claim_threads(f"worker-{n}", lease_seconds=60, limit=n + 1):
            assert len(batch) <= n + 1
            claimed.extend(batch)
        return claimed

    results = await asyncio.gather(*(claimer(n) for n in range(8)))
    counts = Counter(t for claimed in results for t in claimed)
    assert [t for t, c in counts.items() if c > 1] == []
    assert set(counts) == ids
    assert sum(1 for claimed in results if claimed) >= 2  # the claimers really did run side by side


async def test_a_batch_claim_takes_the_longest_waiting_runnable_threads_first(store: SqlStore) -> None:
    """Up to ``limit``, oldest update first; waiting, leased and delayed threads are left alone."""
    threads = [await create(store) for _ in range(6)]
    await create(store, "waiting_for_approval")
    assert await store.claim_threads("w1", 60, limit=1) == [threads[0].id]
    assert await store.claim_threads("w1", 60, limit=1) == [threads[1].id]
    await store.release_thread(threads[1].id, "w1", retry_in=30)  # delayed: not runnable for now
    assert await store.claim_threads("w2", 60, limit=3) == [t.id for t in threads[2:5]]
    assert await store.claim_threads("w3", 60, limit=10) == [threads[5].id]
    assert await store.claim_threads("w3", 60, limit=10) == []


async def test_an_expired_lease_makes_the_thread_claimable_again(store: SqlStore) -> None:
    """While a lease holds nobody else gets the thread; after it expires another worker does."""
    thread = await create(store)
    assert await store.claim_threads("w1", lease_seconds=1.0) == [thread.id]
    assert await store.claim_threads("w2", lease_seconds=60) == []
    await asyncio.sleep(1.1)
    assert await store.claim_threads("w2", lease_seconds=60) == [thread.id]
    assert not await store.renew_lease(thread.id, "w1", 60)  # w1 lost it
    assert await store.renew_lease(thread.id, "w2", 60)


@pytest.mark.parametrize("status", WAITING)
async def test_a_waiting_or_finished_thread_is_never_claimed(store: SqlStore, status: ThreadStatus) -> None:
    """Only running threads are runnable."""
    await create(store, status)
    assert await store.claim_threads("w1", lease_seconds=60) == []


async def test_release_with_retry_delays_and_counts_attempts(store: SqlStore) -> None:
    """release_thread(retry_in) hides the thread for a while and counts attempts; a plain release resets them."""
    thread = await create(store)
    assert await store.claim_threads("w1", 60) == [thread.id]
    await store.release_thread(thread.id, "w2")  # not the owner: nothing happens
    assert await store.claim_threads("w2", 60) == []
    await store.release_thread(thread.id, "w1", retry_in=1.0)
    assert await store.thread_attempts(thread.id) == 1
    assert await store.claim_threads("w2", 60) == []
    await asyncio.sleep(1.1)
    assert await store.claim_threads("w2", 60) == [thread.id]
    await store.release_thread(thread.id, "w2", retry_in=0)
    assert await store.thread_attempts(thread.id) == 2
    assert await store.claim_threads("w3", 60) == [thread.id]
    await store.release_thread(thread.id, "w3")
    assert await store.thread_attempts(thread.id) == 0
    assert await store.claim_threads("w1", 60) == [thread.id]


async def test_appending_a_waiting_status_drops_the_lease(store: SqlStore) -> None:
    """When a thread starts waiting its lease and retry state go, so a later resume is claimable at once."""
    thread = await create(store)
    assert await store.claim_threads("w1", 60) == [thread.id]
    await store.release_thread(thread.id, "w1", retry_in=0)
    assert await store.claim_threads("w1", 60) == [thread.id]
    await store.append(thread.id, [Done(message="ok")], expected_seq=2, status="done", agent="deploy")
    assert not await store.renew_lease(thread.id, "w1", 60)
    assert await store.thread_attempts(thread.id) == 0
    await store.append(thread.id, [UserMessage(text="again")], expected_seq=3, status="running", agent="deploy")
    assert await store.claim_threads("w2", 60) == [thread.id]


async def test_an_append_writes_its_outbox_rows_in_order_and_a_conflicting_one_writes_none(store: SqlStore) -> None:
    """On PostgreSQL the rows come from arrays inside the append's one statement: their ids must still follow
    the order the channel made them in, and a failed compare-and-set must leave none behind."""
    thread = await create(store)
    await store.append(thread.id, [UserMessage(text="and then")], expected_seq=thread.seq, status="running",
                       agent="deploy", outbox=[item("slack", n) for n in range(12)])
    with pytest.raises(Conflict):
        await store.append(thread.id, [UserMessage(text="late")], expected_seq=thread.seq, status="running",
                           agent="deploy", outbox=[item("slack", 99)])
    rows = await store.claim_outbox("slack", 50, lease_seconds=60)
    assert [r.payload["n"] for r in rows] == list(range(12))
    assert {r.thread_id for r in rows} == {thread.id}
