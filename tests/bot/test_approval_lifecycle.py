"""Approvals that do not rot: reminders, escalation and expiry with second-scale durations, withdrawal, outcomes.

Each test runs on SQLite and on PostgreSQL, with two runtimes (worker and timer loops each) on one database, as
two processes would: every reminder is sent once, the expiry is recorded once, a click at the expiry has one winner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from bot.config import load_settings
from bot.errors import ApprovalExpired, NotAuthorized, NotRequester, NotWaiting
from bot.events import (
    ApprovalDecided,
    ApprovalEscalated,
    ApprovalReminded,
    ApprovalRequested,
    Done,
    ThreadCancelled,
    Via,
)
from bot.runtime import Loops, Runtime
from bot.thread import Thread
from bot.wiring import build_runtime
from storage import upgrade

ENV = {
    "OPSGATE_POLL_INTERVAL": "0.1",
    "OPSGATE_APPROVERS_DEPLOYERS": "alice@example.com",
    "OPSGATE_APPROVERS_ONCALL": "carol@example.com",
    "OPSGATE_APPROVAL_EXPIRY": "3s",
    "OPSGATE_APPROVAL_REMINDER": "1s",
    "OPSGATE_APPROVAL_ESCALATION": "1.5s",
    "OPSGATE_APPROVAL_ESCALATE_TO": "oncall",
}
DEPLOY = "!deploy service=api version=1.2.3 environment=production"
Start = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def start(database_url: str) -> AsyncIterator[Start]:
    """Factory of runtimes on one database, running the ``loops`` named (all: worker, timers, outbox)."""
    await upgrade(database_url)
    running: list[tuple[Runtime, Loops]] = []

    async def make(loops: tuple[str, ...] = ("worker", "timers", "outbox"), **env: str) -> Runtime:
        settings = load_settings({"DATABASE_URL": database_url, **ENV, **env})
        runtime = build_runtime(settings, channels=[])
        started = Loops()
        started.start({name: loop for name, loop in runtime.loops(channels=False).items() if name in loops})
        running.append((runtime, started))
        return runtime

    yield make
    for runtime, started in running:
        await started.stop()
        await runtime.aclose()


async def _request(runtime: Runtime, user: str = "bob@example.com") -> Thread:
    """Start a production deploy and wait until it waits for approval."""
    thread = await runtime.service.start_thread(DEPLOY, user=user, via=Via(channel="api"))
    return await _until(runtime, thread.id, lambda t: t.pending is not None)


async def _until(runtime: Runtime, thread_id: str, check: Callable[[Thread], bool], timeout: float = 20) -> Thread:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        thread = await runtime.service.get_thread(thread_id)
        if check(thread):
            return thread
        assert time.monotonic() < deadline, [e.type for e in thread.events]
        await asyncio.sleep(0.05)


def _of(thread: Thread, kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in thread.events if isinstance(e, kind)]


async def test_an_unanswered_request_is_reminded_escalated_and_expires_once(start: Start) -> None:
    """Two workers: reminders 1 and 2 once each, one escalation to oncall, one expiry; the thread ends expired."""
    first, second = await start(), await start()
    thread = await _request(first)
    [request] = _of(thread, ApprovalRequested)
    assert request.expires_at is not None and request.escalate_to == "oncall" and request.remind_every_s == 1.0
    assert abs((request.expires_at - request.at).total_seconds() - 3) < 0.01
    done = await _until(first, thread.id, lambda t: t.outcome is not None)
    await asyncio.sleep(1.0)  # a duplicate reminder or expiry would show up now
    done = await second.service.get_thread(thread.id)
    assert [r.number for r in _of(done, ApprovalReminded)] == [1, 2]
    assert [(e.group, e.approvers) for e in _of(done, ApprovalEscalated)] == [("oncall", ["carol@example.com"])]
    [decision] = _of(done, ApprovalDecided)
    assert (decision.closed_by, decision.approved, decision.by) == ("expiry", False, "opsgate")
    assert decision.at >= request.expires_at and "nobody decided within 3s" in (decision.comment or "")
    assert (done.status, done.outcome) == ("done", "expired")
    assert "expired" in _of(done, Done)[-1].message
    assert await first.store.list_timers(thread.id) == []  # every timer fired: none is left behind


async def test_the_escalation_group_may_decide_only_after_the_escalation(start: Start) -> None:
    """Carol (oncall) is refused before the escalation and accepted after it; the deploy then runs."""
    runtime = await start(OPSGATE_APPROVAL_EXPIRY="30s", OPSGATE_APPROVAL_ESCALATION="1s")
    thread = await _request(runtime)
    approval_id = thread.pending.approval_id if thread.pending else ""
    with pytest.raises(NotAuthorized, match="not one of the group deployers"):
        await runtime.service.decide(thread.id, approval_id, approved=True, user="carol@example.com",
                                     via=Via(channel="api"))
    await _until(runtime, thread.id, lambda t: bool(t.pending and t.pending.escalated_to))
    await runtime.service.decide(thread.id, approval_id, approved=True, user="carol@example.com",
                                 via=Via(channel="api"))
    done = await _until(runtime, thread.id, lambda t: t.outcome is not None)
    assert done.outcome == "executed"
    assert await runtime.store.list_timers(thread.id) == []  # the expiry was cancelled: no row left


async def test_a_decision_in_time_cancels_the_timers(start: Start) -> None:
    """An approval before any timer is due stops them all: no reminder, no escalation, no expiry follows."""
    runtime = await start(OPSGATE_APPROVAL_EXPIRY="2s", OPSGATE_APPROVAL_REMINDER="1s")
    thread = await _request(runtime)
    assert thread.pending is not None
    await runtime.service.decide(thread.id, thread.pending.approval_id, approved=False, user="alice@example.com",
                                 via=Via(channel="api"), comment="not today")
    done = await _until(runtime, thread.id, lambda t: t.outcome is not None)
    await asyncio.sleep(2.5)
    done = await runtime.service.get_thread(thread.id)
    assert done.outcome == "rejected"
    assert _of(done, ApprovalReminded) == [] and len(_of(done, ApprovalDecided)) == 1
    assert await runtime.store.list_timers(thread.id) == []  # cancelled timers leave no row


async def test_a_click_at_the_expiry_instant_has_one_winner(start: Start) -> None:
    """Decisions and the expiry timer racing at the expiry instant: each request closes exactly once.

    A click at or after the instant does not count (ApprovalExpired): the expiry is recorded, by whichever of
    the click or the timer commits first; the other finds it closed.
    """
    clicker, firer = await start(loops=()), await start(loops=())
    worker = await start(loops=("worker",), OPSGATE_APPROVAL_EXPIRY="1s")  # no timer loop: the race is ours
    threads = [await _request(worker) for _ in range(4)]
    expiry = max(t.pending.expires_at for t in threads if t.pending and t.pending.expires_at)
    await asyncio.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()))

    async def click(thread: Thread) -> str:
        assert thread.pending is not None
        try:
            await clicker.service.decide(thread.id, thread.pending.approval_id, approved=True,
                                         user="alice@example.com", via=Via(channel="api"))
        except ApprovalExpired:
            return "expired"
        return "approved"

    results = await asyncio.gather(*[click(t) for t in threads], firer.timers.fire_due())
    assert results[:-1] == ["expired"] * 4
    for thread in threads:
        stored = await worker.service.get_thread(thread.id)
        [decision] = _of(stored, ApprovalDecided)
        assert decision.closed_by == "expiry"
    await firer.timers.fire_due()  # whatever the race left due is stale now
    for thread in threads:
        assert len(_of(await worker.service.get_thread(thread.id), ApprovalDecided)) == 1


async def test_a_request_due_to_expire_while_everything_was_down_expires_on_start(start: Start) -> None:
    """Requested, every process stops, the expiry passes; the first process to start records it once."""
    before = await start(loops=("worker",), OPSGATE_APPROVAL_EXPIRY="1s", OPSGATE_APPROVAL_REMINDER="off")
    thread = await _request(before)  # `before` runs no timer loop: nothing can fire while the expiry passes
    await asyncio.sleep(1.5)
    assert (await before.service.get_thread(thread.id)).pending is not None
    after = await start(OPSGATE_APPROVAL_EXPIRY="1s", OPSGATE_APPROVAL_REMINDER="off")
    done = await _until(after, thread.id, lambda t: t.outcome is not None)
    assert done.outcome == "expired" and len(_of(done, ApprovalDecided)) == 1


async def test_the_requester_withdraws_a_pending_request(start: Start) -> None:
    """Withdrawal closes the request (closed_by withdrawal), stops its timers and ends the thread as cancelled."""
    runtime = await start()
    thread = await _request(runtime)
    with pytest.raises(NotRequester, match="only the requester"):
        await runtime.service.cancel(thread.id, user="alice@example.com", via=Via(channel="api"))
    cancelled = await runtime.service.cancel(thread.id, user="bob@example.com", via=Via(channel="api"),
                                             reason="wrong version")
    assert (cancelled.status, cancelled.outcome) == ("done", "cancelled")
    [decision] = _of(cancelled, ApprovalDecided)
    assert decision.closed_by == "withdrawal" and "wrong version" in (decision.comment or "")
    assert [e.reason for e in _of(cancelled, ThreadCancelled)] == ["wrong version"]
    assert await runtime.store.list_timers(thread.id) == []  # cancelled timers leave no row
    with pytest.raises(NotWaiting, match="already finished"):
        await runtime.service.cancel(thread.id, user="bob@example.com", via=Via(channel="api"))
    await asyncio.sleep(0.5)  # nothing runs after a cancellation
    assert (await runtime.service.get_thread(thread.id)).events[-1].type == "thread_cancelled"
