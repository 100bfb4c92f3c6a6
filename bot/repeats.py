"""A side effect asked for once runs once: the same side-effecting action is not proposed twice in one request.

The idempotency key covers a crash retry of one action id; this covers a model that, after a deploy succeeded,
proposes the identical deploy again (a new action id, a new key). Within the current request (everything since
the person's last message), a side-effecting action whose name and arguments equal one already executed,
approved, pending or rejected is not run again. Read-only actions (``side_effects = False``) repeat freely.
Pure functions of the thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from bot.actions import Action
from bot.events import (
    ActionProposed,
    ActionResult,
    ApprovalDecided,
    ApprovalRequested,
    Event,
    HumanInputReceived,
    ProposalBlocked,
    UserMessage,
)
from bot.thread import Thread

Outcome = Literal["succeeded", "failed", "approved", "pending", "rejected", "cleared"]


@dataclass(frozen=True)
class Earlier:
    """The earlier identical action in this request and what became of it."""

    action_id: str
    outcome: Outcome
    detail: str | None = None  # the result text, or who rejected and why


def _key(name: str, arguments: dict[str, Any]) -> str:
    shown = {k: v for k, v in arguments.items() if k != "reason"}
    return json.dumps([name, shown], sort_keys=True, separators=(",", ":"))


def current_request(thread: Thread) -> list[Event]:
    """The events since the person's last message (the request the agent is working on)."""
    start = 0
    for index, event in enumerate(thread.events):
        if isinstance(event, UserMessage | HumanInputReceived):
            start = index
    return thread.events[start:]


def find_earlier(action: Action, thread: Thread) -> Earlier | None:
    """The identical side-effecting action already proposed in this request and not blocked, if any."""
    if not type(action).side_effects:
        return None
    events = current_request(thread)
    blocked = {e.action_id for e in events if isinstance(e, ProposalBlocked) and e.rule != "authority"}
    wanted = _key(action.name, action.model_dump(mode="json"))
    # Edited approvals ran with the approver's arguments: compare against what actually ran or was cleared.
    effective: dict[str, tuple[str, dict[str, Any]]] = {}
    for event in events:
        if isinstance(event, ActionProposed) and event.action_id not in blocked:
            effective[event.action_id] = (event.name, event.arguments)
        elif isinstance(event, ApprovalDecided) and event.arguments is not None and event.action_id in effective:
            effective[event.action_id] = (effective[event.action_id][0], event.arguments)
    for action_id, (name, arguments) in effective.items():
        if _key(name, arguments) == wanted:
            return Earlier(action_id, *_outcome(action_id, events))
    return None


def _outcome(action_id: str, events: list[Event]) -> tuple[Outcome, str | None]:
    result = next((e for e in events if isinstance(e, ActionResult) and e.action_id == action_id), None)
    if result is not None:
        return ("succeeded" if result.ok else "failed"), result.result
    decision = next((e for e in events if isinstance(e, ApprovalDecided) and e.action_id == action_id), None)
    if decision is not None:
        if decision.approved:
            return "approved", f"approved by {decision.by}"
        return "rejected", f"rejected by {decision.by}" + (f": {decision.comment}" if decision.comment else "")
    if any(isinstance(e, ApprovalRequested) and e.action_id == action_id for e in events):
        return "pending", "waiting for approval"
    return "cleared", None


def describe(action: Action, earlier: Earlier) -> str:
    """Why the repeat was stopped, for the event log."""
    what = action.summary()
    return f"{what} was already {earlier.outcome} in this request (action {earlier.action_id})"


def answer(action: Action, earlier: Earlier) -> tuple[Literal["reply", "ask"], str]:
    """What to tell the person instead: finish with the earlier result, or ask whether to repeat a failure."""
    what = action.summary()
    if earlier.outcome == "succeeded":
        return "reply", f"Done: {earlier.detail}" if earlier.detail else f"Done: {what}."
    if earlier.outcome == "failed":
        return "ask", (f"{what} failed earlier in this request ({earlier.detail}). "
                       "Should I try it again? Reply yes to repeat it.")
    if earlier.outcome == "rejected":
        return "reply", f"{what} was {earlier.detail}. I did not propose it again."
    return "reply", f"{what} is already under way ({earlier.detail or earlier.outcome}); I did not start it twice."
