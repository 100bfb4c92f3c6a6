"""Rendering a thread as compact model context (factor 3): XML-like event blocks, resolved errors hidden.

The model sees what matters (who asked what, what was proposed and decided, results, open errors), not an
ever-growing chat transcript with bookkeeping it cannot use.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.events import (
    ActionProposed,
    ActionResult,
    ApprovalDecided,
    ApprovalRequested,
    ContextFetched,
    Done,
    ErrorEvent,
    Event,
    HumanInputReceived,
    HumanInputRequested,
    ProposalBlocked,
    UserMessage,
)
from bot.thread import Thread

_MAX_RESULT_CHARS = 2000
# Earlier, finished requests get at most this much of the context: a thread that has gone on for months (or a
# flood of long messages) keeps its newest history and the model call stays a bounded size.
MAX_EARLIER_CHARS = 60_000


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _block(tag: str, body: str | None = None, **attrs: Any) -> str:
    head = " ".join([tag, *(f'{k}="{_value(v)}"' for k, v in attrs.items() if v not in (None, "", [], {}))])
    if body is None:
        return f"<{head}/>"
    return f"<{head}>\n{body.strip()}\n</{tag}>"


def _fields(arguments: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {_value(v)}" for k, v in arguments.items())


# Rules that stop a proposal (it never happened; the model is told why). The others clean text, or (a needless
# question) replace the model's question by its own action, which follows: nothing for the model to read.
_NOT_DONE = ("grounding", "repeat", "ambiguous")
_CLOSED_VERDICT = {"expiry": "expired", "withdrawal": "withdrawn"}  # a rejection the model must read as such


def render_event(event: Event) -> str | None:
    """One event as a block, or None for bookkeeping the model does not need."""
    if isinstance(event, UserMessage):
        return _block("user_message", event.text, user=event.user, via=event.via.channel)
    if isinstance(event, HumanInputReceived):
        return _block("human_response", event.text, user=event.user)
    if isinstance(event, ActionProposed):
        if event.name in ("request_more_information", "done_for_now"):
            return None  # rendered by the question or reply that follows
        return _block(event.name, _fields(event.arguments) or None)
    if isinstance(event, ApprovalRequested):
        return _block("approval_requested", action=event.name, approvers=",".join(event.approvers) or None)
    if isinstance(event, ApprovalDecided):
        verdict = "approved" if event.approved else _CLOSED_VERDICT.get(event.closed_by, "rejected")
        body = event.comment
        if event.changes:
            edits = "; ".join(f"{c.field}: {_value(c.old)} -> {_value(c.new)}" for c in event.changes)
            body = f"{body}\nedited: {edits}" if body else f"edited: {edits}"
        return _block(f"approval_{verdict}", body, by=event.by)
    if isinstance(event, HumanInputRequested):
        return _block("question_to_human", event.message)
    if isinstance(event, ActionResult):
        text = event.result if len(event.result) <= _MAX_RESULT_CHARS else event.result[:_MAX_RESULT_CHARS] + "…"
        return _block(f"{event.name}_result", text, ok=None if event.ok else "false")
    if isinstance(event, ErrorEvent):
        return _block("error", event.message, kind=event.kind)
    if isinstance(event, ProposalBlocked) and event.rule in _NOT_DONE:
        return _block("not_done", event.reason, rule=event.rule)
    if isinstance(event, Done):
        return _block("reply", event.message)
    if isinstance(event, ContextFetched):
        return _block("context", event.text, fetched_by=event.agent, ok=None if event.ok else "false")
    return None  # agent_selected, execution_started


def _earlier_block(event: Event, proposals: dict[str, ActionProposed]) -> str | None:
    """A finished request, compacted: what people said, the replies, one line per executed action."""
    if isinstance(event, UserMessage | HumanInputReceived | HumanInputRequested | Done | ContextFetched):
        return render_event(event)
    if isinstance(event, ApprovalDecided) and not event.approved and event.comment:
        return _block("approval_rejected", event.comment, by=event.by)
    if isinstance(event, ActionResult):
        proposal = proposals.get(event.action_id)
        args = " ".join(f"{k}={_value(v)}" for k, v in (proposal.arguments if proposal else {}).items())
        return _block("executed", None, action=f"{event.name} {args}".strip(), ok="true" if event.ok else "false")
    return None


def render_thread(thread: Thread) -> str:
    """The thread as the model's context (factor 3).

    The current request (everything after the last reply) is rendered in full, without resolved errors,
    delivery noise or approval requests already decided. Earlier, finished requests keep only what people
    said, the replies and one line per executed action: the mechanics of finished work are not worth tokens;
    and only their newest MAX_EARLIER_CHARS characters.
    """
    hidden = thread.resolved_error_ids
    decided = {e.approval_id for e in thread.events if isinstance(e, ApprovalDecided)}
    last_reply = max((i for i, e in enumerate(thread.events) if isinstance(e, Done)), default=-1)
    proposals = {e.action_id: e for e in thread.events if isinstance(e, ActionProposed)}
    stopped = {e.action_id for e in thread.events
               if isinstance(e, ProposalBlocked) and e.rule in _NOT_DONE}
    earlier: list[str] = []
    current: list[str] = []
    for index, event in enumerate(thread.events):
        if index <= last_reply:
            block = _earlier_block(event, proposals)
        elif event.id in hidden or (isinstance(event, ErrorEvent) and event.kind == "delivery"):
            continue
        elif isinstance(event, ActionProposed) and event.action_id in stopped:
            continue  # never happened; the not_done block that follows says why
        elif isinstance(event, ApprovalRequested) and event.approval_id in decided:
            continue
        else:
            block = render_event(event)
        if block is not None:
            (earlier if index <= last_reply else current).append(block)
    return "\n\n".join([*_newest(earlier, MAX_EARLIER_CHARS), *current])


def _newest(blocks: list[str], budget: int) -> list[str]:
    """The newest blocks that fit in ``budget`` characters, after a note saying how many older ones were left out."""
    kept: list[str] = []
    size = 0
    for block in reversed(blocks):
        size += len(block) + 2
        if size > budget:
            break
        kept.append(block)
    omitted = len(blocks) - len(kept)
    note = [_block("earlier_history_omitted", None, blocks=str(omitted))] if omitted else []
    return note + kept[::-1]


INSTRUCTIONS = (
    "The thread so far, oldest first. Call exactly one tool for the next step. Our code decides approvals: "
    "propose what the person needs, and after a rejection read its reason and re-plan."
)


def build_messages(prompt: str, thread: Thread, facts: Sequence[str] = ()) -> list[dict[str, str]]:
    """System prompt from the agent's file, then one user message: the agent's facts and the rendered thread."""
    known = "".join(f"{_block('context', fact)}\n\n" for fact in facts)
    return [
        {"role": "system", "content": prompt.strip()},
        {"role": "user", "content": f"{INSTRUCTIONS}\n\n{known}{render_thread(thread)}"},
    ]
