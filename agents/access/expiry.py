"""Revoking grants when they expire: a durable timer per grant, fired exactly once (bot/timers.py).

When a grant's result is recorded, ``schedule_revokes`` sets a timer at its expiry; the timer appends a
``revoke_access`` proposal to the grant's thread, which the worker executes like any action (recorded intent,
one execution, the result in the thread). A revoke the receiver did not confirm is tried again a little later,
until it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from agents.access.roles import parse_duration
from bot.events import ActionProposed, ActionResult, Event, ExecutionStarted
from bot.store import TimerChanges, TimerRow
from bot.thread import Thread
from bot.timers import Fired, schedule

REVOKE = "access-revoke"
_retry = [timedelta(seconds=60)]  # OPSGATE_ACCESS_RETRY_SECONDS, set at start (schedulers take no settings)


def configure(retry: timedelta) -> None:
    """How long after an unconfirmed revoke it is tried again."""
    _retry[0] = retry


def _started(thread: Thread, action_id: str) -> ExecutionStarted | None:
    return next((e for e in thread.events if isinstance(e, ExecutionStarted) and e.action_id == action_id), None)


def schedule_revokes(thread: Thread, new: Sequence[Event]) -> TimerChanges | None:
    """A revoke timer at each new grant's expiry; another try soon after an unconfirmed automatic revoke."""
    timers = []
    for event in new:
        if not isinstance(event, ActionResult):
            continue
        started = _started(thread, event.action_id)
        if started is None:
            continue
        if event.name == "grant_access" and event.ok:
            due = event.at + parse_duration(str(started.arguments.get("duration", "")))
            timers.append(schedule(REVOKE, due, key=f"grant:{started.idempotency_key}"[:64],
                                   payload={"grant_id": started.idempotency_key}))
        elif event.name == "revoke_access" and not event.ok and _automatic(thread, event.action_id):
            grant_id = str(started.arguments.get("grant_id", ""))
            timers.append(schedule(REVOKE, event.at + _retry[0], key=f"grant:{grant_id}"[:64],
                                   payload={"grant_id": grant_id}))
    return TimerChanges(schedule=timers) if timers else None


def _automatic(thread: Thread, action_id: str) -> bool:
    proposal = thread.proposal(action_id)
    return proposal is not None and proposal.reason == EXPIRED


EXPIRED = "the grant expired"


async def revoke_due(thread: Thread, timer: TimerRow) -> Fired:
    """The expired grant's revoke, proposed in its thread; nothing if it was revoked meanwhile."""
    grant_id = str(timer.payload.get("grant_id", ""))
    revoked = any(isinstance(e, ActionResult) and e.ok and e.name == "revoke_access"
                  and (s := _started(thread, e.action_id)) is not None and s.arguments.get("grant_id") == grant_id
                  for e in thread.events)
    if revoked:
        return Fired()
    if thread.pending is not None:  # an approval is open in the thread: the timer is retried after a while
        raise RuntimeError(f"thread {thread.id} waits for an approval; the revoke of {grant_id} follows it")
    return Fired(events=[ActionProposed(name="revoke_access", arguments={"grant_id": grant_id}, source="command",
                                        reason=EXPIRED)])
