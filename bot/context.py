"""Rendering a thread as compact model context (factor 3): XML-like event blocks, resolved errors hidden.

The model sees what matters (who asked what, what was proposed and decided, results, open errors), not an
ever-growing chat transcript with bookkeeping it cannot use.
"""

from __future__ import annotations

import json
from typing import Any

from bot.events import (
    ActionProposed,
    ActionResult,
    ApprovalDecided,
    ApprovalRequested,
    Done,
    ErrorEvent,
    Event,
    HumanInputReceived,
    HumanInputRequested,
    UserMessage,
)
from bot.thread import Thread

_MAX_RESULT_CHARS = 2000


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _block(tag: str, body: str | None = None, **attrs: Any) -> str:
    head = " ".join([tag, *(f'{k}="{_value(v)}"' for k, v in attrs.items() if v not in (None, "", [], {}))])
    if body is None:
        return f"<{head}/>"
    return f"<{head}>\n{body.strip()}\n</{tag}>"


def _fields(arguments: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {_value(v)}" for k, v in arguments.items())


def render_event(event: Event) -> str | None:
    """One event as a block, or None for bookkeeping the model does not need."""
    if isinstance(event, UserMessage):
        return _block("user_message", event.text, user=event.user, via=event.via.channel)
    if isinstance(event, HumanInputReceived):
        return _block("human_response", event.text, user=event.user)
    if isinstance(event, ActionProposed):
        if event.name in ("request_more_information", "done_for_now"):
            return None  # rendered by the question or reply that follows
        return _block(event.name, _fields(event.arguments) or None, id=event.action_id[:8])
    if isinstance(event, ApprovalRequested):
        return _block("approval_requested", action=event.name, approvers=",".join(event.approvers) or None)
    if isinstance(event, ApprovalDecided):
        verdict = "approved" if event.approved else "rejected"
        body = event.comment
        if event.changes:
            edits = "; ".join(f"{c.field}: {_value(c.old)} -> {_value(c.new)}" for c in event.changes)
            body = f"{body}\nedited: {edits}" if body else f"edited: {edits}"
        return _block(f"approval_{verdict}", body, by=event.by, action=event.action_id[:8])
    if isinstance(event, HumanInputRequested):
        return _block("question_to_human", event.message)
    if isinstance(event, ActionResult):
        text = event.result if len(event.result) <= _MAX_RESULT_CHARS else event.result[:_MAX_RESULT_CHARS] + "…"
        return _block(f"{event.name}_result", text, ok=None if event.ok else "false")
    if isinstance(event, ErrorEvent):
        return _block("error", event.message, kind=event.kind)
    if isinstance(event, Done):
        return _block("reply", event.message)
    return None  # agent_selected, execution_started


def render_thread(thread: Thread) -> str:
    """The whole thread as the model's context, with resolved errors and delivery noise left out."""
    hidden = thread.resolved_error_ids
    blocks = []
    for event in thread.events:
        if event.id in hidden or (isinstance(event, ErrorEvent) and event.kind == "delivery"):
            continue
        block = render_event(event)
        if block is not None:
            blocks.append(block)
    return "\n\n".join(blocks)


INSTRUCTIONS = (
    "The thread so far is below, oldest first. Choose exactly one next step by calling one of the tools. "
    "Approval is decided by our code, not by you: propose the action the person needs, and if a rejection "
    "comes back, read its reason and re-plan."
)


def build_messages(prompt: str, thread: Thread) -> list[dict[str, str]]:
    """System prompt from the agent's file, then one user message holding the rendered thread."""
    return [
        {"role": "system", "content": prompt.strip()},
        {"role": "user", "content": f"{INSTRUCTIONS}\n\n{render_thread(thread)}\n\nWhat is the next step?"},
    ]
