"""Approval timers: a request's expiry, reminders and escalation as one durable timer (bot/timers.py).

``approval_timers`` is a journal scheduler: the commit that records a request schedules its timer, due at the
earliest of its first reminder, escalation and expiry; the commit that closes it (any decision, an expiry, a
withdrawal) cancels it. When the timer fires, its handler does what is due by then (expire; else escalate and/or
remind) and schedules the next one in the same transaction, so a waiting request holds one pending timer row, not
one per kind. What is due is read from the thread (reminders sent, escalated or not), never from the timer: a
request whose timer fires late or twice (a lost race) sends nothing twice, and a closed request changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from bot.events import ApprovalDecided, ApprovalEscalated, ApprovalReminded, ApprovalRequested, Event
from bot.lifecycle import expiry_event
from bot.store import TimerChanges, TimerRow
from bot.thread import Thread
from bot.timers import Fired, TimerHandlers, schedule

APPROVAL = "approval"


def approval_timers(thread: Thread, new: Sequence[Event]) -> TimerChanges | None:
    """Journal scheduler: a new request starts its timer (if it expires, reminds or escalates); a decision stops it."""
    scheduled, cancelled = [], []
    for event in new:
        if isinstance(event, ApprovalRequested):
            due = next_due(event, reminded=0, escalated=False)
            if due is not None:
                scheduled.append(schedule(APPROVAL, due, key=event.approval_id))
        elif isinstance(event, ApprovalDecided):
            cancelled.append(event.approval_id)
    # Most commits neither request nor decide: they build nothing here (a model per commit was 2.5% of a turn).
    return TimerChanges(schedule=scheduled, cancel=cancelled) if scheduled or cancelled else None


def reminder_due(request: ApprovalRequested, number: int) -> datetime | None:
    """When reminder ``number`` (1, 2, …) is due: every ``remind_every_s`` after the request, before its expiry."""
    if not request.remind_every_s:
        return None
    due = request.at + timedelta(seconds=request.remind_every_s * number)
    if request.expires_at is not None and due >= request.expires_at:
        return None  # the expiry itself is the last word
    return due


def next_due(request: ApprovalRequested, *, reminded: int, escalated: bool) -> datetime | None:
    """The earliest of the next reminder, the escalation (unless done) and the expiry; None: nothing to come."""
    escalation = request.escalate_at if request.escalate_to and not escalated else None
    times = (reminder_due(request, reminded + 1), escalation, request.expires_at)
    return min((t for t in times if t is not None), default=None)


def register(handlers: TimerHandlers, approvers_of: Callable[[str], list[str]]) -> None:
    """Register the approval timer's handler; ``approvers_of(group)`` lists a group's members."""

    async def fire(thread: Thread, timer: TimerRow) -> Fired:
        pending = thread.pending
        request = thread.approval_request(timer.key)
        if pending is None or pending.approval_id != timer.key or request is None:
            return Fired()  # decided meanwhile: stale
        now = max(timer.due_at, datetime.now(UTC))
        if request.expires_at is not None and request.expires_at <= now:
            return Fired(events=[expiry_event(thread, pending)])  # the decision cancels what is left
        events: list[Event] = []
        escalated = pending.escalated_to is not None
        if not escalated and request.escalate_to and request.escalate_at and request.escalate_at <= now:
            events.append(ApprovalEscalated(approval_id=pending.approval_id, group=request.escalate_to,
                                            approvers=approvers_of(request.escalate_to),
                                            expires_at=pending.expires_at))
            escalated = True
        reminded = pending.reminders
        due = reminder_due(request, reminded + 1)
        if due is not None and due <= now:
            reminded += 1
            events.append(ApprovalReminded(approval_id=pending.approval_id, number=reminded,
                                           approvers=list(request.approvers), expires_at=pending.expires_at))
        following = next_due(request, reminded=reminded, escalated=escalated)
        return Fired(events=events, schedule=[schedule(APPROVAL, following, key=timer.key)] if following else [])

    handlers.register(APPROVAL, fire)
