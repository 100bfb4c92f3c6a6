"""One approval timer per waiting request: scheduled at the earliest due time, it does what is due and moves on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.approval_timers import APPROVAL, approval_timers, register
from bot.events import (
    ApprovalDecided,
    ApprovalEscalated,
    ApprovalReminded,
    ApprovalRequested,
    Event,
    UserMessage,
)
from bot.store import TimerRow
from bot.thread import Thread
from bot.timers import TimerHandlers

T0 = datetime.now(UTC) + timedelta(hours=1)  # later than any test runs: "now" is the timer's own due time


def _request(**lifecycle: object) -> ApprovalRequested:
    return ApprovalRequested(action_id="a1", name="deploy", arguments={}, approvers=["alice@example.com"], at=T0,
                             **lifecycle)  # type: ignore[arg-type]


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_request_schedules_one_timer_at_its_earliest_due_time_and_a_decision_cancels_it() -> None:
    """Reminder at 1 s, escalation at 1.5 s, expiry at 3 s: one timer, due at 1 s; the decision cancels its key."""
    request = _request(expires_at=_at(3), remind_every_s=1.0, escalate_at=_at(1.5), escalate_to="oncall")
    changes = approval_timers(Thread(id="t"), [request])
    assert changes is not None
    assert [(t.kind, t.key, t.due_at) for t in changes.schedule] == [(APPROVAL, request.approval_id, _at(1))]
    decided = approval_timers(Thread(id="t"), [ApprovalDecided(approval_id=request.approval_id, action_id="a1",
                                                               approved=True, by="alice@example.com")])
    assert decided is not None and decided.cancel == [request.approval_id] and decided.schedule == []
    assert approval_timers(Thread(id="t"), [_request()]) is None  # no expiry, reminder or escalation: no timer


async def test_the_one_timer_reminds_escalates_reminds_and_expires_in_turn() -> None:
    """Firing at each due time in turn: reminder 1, escalation, reminder 2, expiry, each scheduling the next."""
    handlers = TimerHandlers()
    register(handlers, lambda group: [f"{group}@example.com"])
    fire = handlers.get(APPROVAL)
    assert fire is not None
    request = _request(expires_at=_at(3), remind_every_s=1.0, escalate_at=_at(1.5), escalate_to="oncall")
    thread = Thread(id="t").with_events([UserMessage(text="deploy"), request])
    due: datetime | None = _at(1)
    seen: list[tuple[float, list[str]]] = []
    while due is not None:
        timer = TimerRow(id=1, thread_id="t", kind=APPROVAL, key=request.approval_id, due_at=due)
        fired = await fire(thread, timer)
        seen.append(((due - T0).total_seconds(), [e.type for e in fired.events]))
        new: list[Event] = list(fired.events)
        thread = thread.with_events(new)
        due = fired.schedule[0].due_at if fired.schedule else None
    assert seen == [(1.0, ["approval_reminded"]), (1.5, ["approval_escalated"]), (2.0, ["approval_reminded"]),
                    (3.0, ["approval_decided"])]
    assert [e.number for e in thread.events if isinstance(e, ApprovalReminded)] == [1, 2]
    assert [e.approvers for e in thread.events if isinstance(e, ApprovalEscalated)] == [["oncall@example.com"]]
    [decision] = [e for e in thread.events if isinstance(e, ApprovalDecided)]
    assert (decision.closed_by, decision.approved) == ("expiry", False)
    stale = await fire(thread, TimerRow(id=2, thread_id="t", kind=APPROVAL, key=request.approval_id, due_at=_at(4)))
    assert not (stale.events or stale.schedule)  # closed: a late or second firing changes nothing
