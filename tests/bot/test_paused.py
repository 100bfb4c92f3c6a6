"""A thread this process paused is answered from memory while the store still holds exactly it (same sequence
number), and read whole once anyone else appended to it: on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.errors import AlreadyDecided
from bot.events import ApprovalDecided, Done, HumanInputRequested, UserMessage, Via
from bot.paused import PausedThreads
from bot.runtime import Runtime
from bot.thread import Thread
from storage import upgrade
from tests.bot.conftest import InProcess, processes

APPROVER = "alice@example.com"
API = Via(channel="api")
DEPLOY = "!deploy service=api version=1.2.3 environment=production"


def asked(thread_id: str = "q") -> Thread:
    """A thread waiting for the requester's answer."""
    thread = Thread(id=thread_id, agent="deploy", events=[UserMessage(text="hi", user="bob")])
    return thread.with_events([HumanInputRequested(message="which version?")])


def test_only_threads_waiting_for_a_person_are_kept_and_the_longest_paused_go_first() -> None:
    """Waiting threads are kept (the latest copy), others forgotten; beyond the limit, the longest paused go."""
    question = asked()
    assert question.status == "waiting_for_human"
    paused = PausedThreads(limit=2)
    paused.committed(question)
    assert paused.get("q", question.seq) is question
    done = question.with_events([Done(message="ok")])
    paused.committed(done)
    assert "q" not in paused and paused.get("q", done.seq) is None
    first, second, third = (asked(name) for name in ("a", "b", "c"))
    for thread in (first, second, third):
        paused.committed(thread)
    assert "a" not in paused and len(paused) == 2
    paused.committed(second)  # paused again: now the most recent
    paused.committed(first)
    assert "c" not in paused and "a" in paused and "b" in paused


def test_a_copy_the_store_no_longer_holds_is_forgotten() -> None:
    """Another seq in the store (someone appended, or no such thread): not returned, and not kept either."""
    question = asked()
    for stored in (question.seq + 1, None):
        paused = PausedThreads()
        paused.committed(question)
        assert paused.get("q", stored) is None and "q" not in paused


Node = Callable[[], Awaitable[InProcess]]


@pytest.fixture
async def node(database_url: str) -> AsyncIterator[Node]:
    """Factory: an opsgate process (runtime, worker running, no model) on this test's database; several share it."""
    await upgrade(database_url)
    async with processes(database_url, model=False) as make:
        yield lambda: make(OPSGATE_APPROVERS=APPROVER)


def count_loads(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids the runtime's store reads whole from now on (the real read still runs)."""
    loads: list[str] = []
    store: Any = runtime.store
    load = store.load_thread

    async def counted(thread_id: str) -> Thread | None:
        loads.append(thread_id)
        return await load(thread_id)

    monkeypatch.setattr(store, "load_thread", counted)
    return loads


async def paused_deploy(og: InProcess) -> Thread:
    thread_id = await og.start(DEPLOY)
    return await og.wait(thread_id, "waiting_for_approval")


async def test_a_decision_on_a_thread_paused_here_does_not_read_it_back(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept copy is the stored thread; the decision uses it (no read of the events) and runs the deploy."""
    og = await node()
    thread = await paused_deploy(og)
    kept = og.runtime.journal.paused.get(thread.id, thread.seq)
    assert kept is not None
    assert (kept.events, kept.agent, kept.status, kept.pending) == (thread.events, thread.agent, thread.status,
                                                                    thread.pending)
    loads = count_loads(og.runtime, monkeypatch)
    pending = thread.pending
    assert pending is not None
    await og.runtime.service.decide(thread.id, pending.approval_id, approved=True, user=APPROVER, via=API)
    assert loads == []
    done = await og.wait(thread.id, "done")
    assert thread.id not in og.runtime.journal.paused
    assert [e.type for e in done.events][-3:] == ["execution_started", "action_result", "done"]


async def test_a_decision_another_process_made_first_is_seen_and_not_repeated(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Process B approves a thread process A paused: A's kept copy is stale, so A reads the thread, finds the
    decision and refuses a second one; one decision and one execution are stored."""
    here, elsewhere = await node(), await node()
    thread = await paused_deploy(here)
    pending = thread.pending
    assert pending is not None and thread.id in here.runtime.journal.paused
    await elsewhere.runtime.service.decide(thread.id, pending.approval_id, approved=True, user=APPROVER, via=API)
    loads = count_loads(here.runtime, monkeypatch)
    with pytest.raises(AlreadyDecided):
        await here.runtime.service.decide(thread.id, pending.approval_id, approved=False, user=APPROVER, via=API)
    assert thread.id in loads and thread.id not in here.runtime.journal.paused
    done = await here.wait(thread.id, "done")
    decisions = [e for e in done.events if isinstance(e, ApprovalDecided)]
    assert [d.approved for d in decisions] == [True]
    assert [e.type for e in done.events].count("execution_started") == 1


async def test_a_note_another_process_appended_is_kept_under_the_decision(node: Node) -> None:
    """Process B appends to a thread process A paused (a refused click); A's decision lands after it, not over
    it: the stored thread has both, in order."""
    here, elsewhere = await node(), await node()
    thread = await paused_deploy(here)
    pending = thread.pending
    assert pending is not None
    await elsewhere.runtime.service.record_refusal(thread.id, pending.approval_id, "mallory@example.com",
                                                   "not an approver", API)
    await here.runtime.service.decide(thread.id, pending.approval_id, approved=True, user=APPROVER, via=API)
    done = await here.wait(thread.id, "done")
    types = [e.type for e in done.events]
    assert types[thread.seq:thread.seq + 2] == ["decision_refused", "approval_decided"]


async def test_a_thread_forgotten_beyond_the_limit_is_read_from_the_store(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for one, the first of two paused threads is read whole when decided, the second is not."""
    og = await node()
    og.runtime.journal.paused = PausedThreads(limit=1)
    first, second = await paused_deploy(og), await paused_deploy(og)
    loads = count_loads(og.runtime, monkeypatch)
    for thread in (first, second):
        pending = thread.pending
        assert pending is not None
        await og.runtime.service.decide(thread.id, pending.approval_id, approved=True, user=APPROVER, via=API)
    assert loads == [first.id]
    for thread in (first, second):
        await og.wait(thread.id, "done")


async def test_a_message_after_another_process_decided_is_taken_as_a_message(node: Node) -> None:
    """A's copy still waits for approval, but B approved and the deploy ran: a message to A is not refused as
    "waiting for a decision" (what the stale copy would say), it is a new request on the finished thread."""
    here, elsewhere = await node(), await node()
    thread = await paused_deploy(here)
    pending = thread.pending
    assert pending is not None
    await elsewhere.runtime.service.decide(thread.id, pending.approval_id, approved=True, user=APPROVER, via=API)
    await elsewhere.wait(thread.id, "done")
    await here.runtime.service.add_message(thread.id, "thanks!", user="bob@example.com", via=API)
    stored = await here.thread(thread.id)
    assert [e.text for e in stored.events if isinstance(e, UserMessage)] == [DEPLOY, "thanks!"]
