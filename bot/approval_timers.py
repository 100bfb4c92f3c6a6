"""Approval timers: a request's expiry, reminders and escalation as durable timers (bot/timers.py).

``approval_timers`` is a journal scheduler: the commit that records a request schedules its timers, the commit
that closes it (any decision, an expiry, a withdrawal) cancels them. The handlers re-check the thread when they
fire: a timer whose request was closed meanwhile is stale and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from bot.events import ApprovalDecided, ApprovalEscalated, ApprovalReminded, ApprovalRequested, Event
from bot.lifecycle import expiry_event
from bot.store import TimerChanges, TimerRow
from bot.thread import PendingApproval, Thread
from bot.timers import Fired, TimerHandlers, schedule

EXPIRY, REMINDER, ESCALATION = "approval_expiry", "approval_reminder", "approval_escalation"


def approval_timers(thread: Thread, new: Sequence[Event]) -> TimerChanges | None:
    """Journal scheduler: a new request starts its expiry, first reminder and escalation; a decision stops them."""
    changes = TimerChanges()
    for event in new:
        if isinstance(event, ApprovalRequested):
            key = event.approval_id
            if event.expires_at is not None:
                changes.schedule.append(schedule(EXPIRY, event.expires_at, key=key))
            reminder = _next_reminder(event, event.at)
            if reminder is not None:
                changes.schedule.append(schedule(REMINDER, reminder, key=key, payload={"number": 1}))
            if event.escalate_at is not None and event.escalate_to:
                changes.schedule.append(schedule(ESCALATION, event.escalate_at, key=key))
        elif isinstance(event, ApprovalDecided):
            changes.cancel.append(event.approval_id)
    return changes or None


def _next_reminder(request: ApprovalRequested, after: datetime) -> datetime | None:
    if not request.remind_every_s:
        return None
    due = after + timedelta(seconds=request.remind_every_s)
    if request.expires_at is not None and due >= request.expires_at:
        return None  # the expiry itself is the last word
    return due


def _pending(thread: Thread, timer: TimerRow) -> PendingApproval | None:
    pending = thread.pending
    return pending if pending is not None and pending.approval_id == timer.key else None


async def fire_expiry(thread: Thread, timer: TimerRow) -> Fired:
    pending = _pending(thread, timer)
    return Fired(events=[expiry_event(thread, pending)]) if pending else Fired()


async def fire_reminder(thread: Thread, timer: TimerRow) -> Fired:
    pending = _pending(thread, timer)
    request = thread.approval_request(timer.key) if pending else None
    if pending is None or request is None:
        return Fired()
    number = int(timer.payload.get("number", 1))
    event = ApprovalReminded(approval_id=pending.approval_id, number=number,
                             approvers=list(request.approvers), expires_at=pending.expires_at)
    following = _next_reminder(request, timer.due_at)
    later = [schedule(REMINDER, following, key=timer.key, payload={"number": number + 1})] if following else []
    return Fired(events=[event], schedule=later)


def register(handlers: TimerHandlers, approvers_of: Callable[[str], list[str]]) -> None:
    """Register the approval timers' handlers; ``approvers_of(group)`` lists a group's members."""

    async def fire_escalation(thread: Thread, timer: TimerRow) -> Fired:
        pending = _pending(thread, timer)
        request = thread.approval_request(timer.key) if pending else None
        if pending is None or request is None or not request.escalate_to or pending.escalated_to:
            return Fired()
        members = approvers_of(request.escalate_to)
        return Fired(events=[ApprovalEscalated(approval_id=pending.approval_id, group=request.escalate_to,
                                               approvers=members, expires_at=pending.expires_at)])

    handlers.register(EXPIRY, fire_expiry)
    handlers.register(REMINDER, fire_reminder)
    handlers.register(ESCALATION, fire_escalation)

