"""A thread's events as a readable timeline: who asked, what was proposed, who decided what and when, results.

Pure converters from events to small view items the templates render; no HTML here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.events import (
    ActionProposed,
    ActionResult,
    AgentSelected,
    ApprovalDecided,
    ApprovalEscalated,
    ApprovalReminded,
    ApprovalRequested,
    DecisionRefused,
    Done,
    ErrorEvent,
    Event,
    ExecutionStarted,
    HumanInputReceived,
    HumanInputRequested,
    ProposalBlocked,
    ThreadCancelled,
    UserMessage,
)
from bot.people import acted
from bot.thread import Thread

Tone = Literal["person", "agent", "approval", "approved", "rejected", "result", "failed", "error", "note"]

STATUS_LABELS = {
    "waiting_for_approval": "Waiting for approval",
    "waiting_for_human": "Waiting for an answer",
    "running": "Running",
    "done": "Done",
    "failed": "Failed",
}
# How a finished request ended (bot/thread.py ``outcome``): the inbox list and the thread header show it.
OUTCOME_LABELS = {
    "executed": "Executed", "rejected": "Rejected", "expired": "Expired", "cancelled": "Cancelled",
    "answered": "Answered", "failed": "Failed",
}


@dataclass(frozen=True)
class Item:
    """One line of the timeline: who, a headline, optional body text and key/value details."""

    id: str
    at: datetime
    tone: Tone
    who: str
    headline: str
    body: str | None = None
    details: list[tuple[str, str]] = field(default_factory=list)


def _args(arguments: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, _text(v)) for k, v in arguments.items() if v is not None]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def item(event: Event, thread: Thread) -> Item | None:
    """The timeline line for one event (None for events that only matter to the machinery)."""

    def make(tone: Tone, who: str, headline: str, body: str | None = None,
             details: list[tuple[str, str]] | None = None) -> Item:
        return Item(event.id, event.at, tone, who, headline, body, details or [])

    if isinstance(event, UserMessage):
        return make("person", who=acted(event.user, event.person),
                    headline=f"asked via {event.via.channel}", body=event.text)
    if isinstance(event, HumanInputReceived):
        return make("person", who=acted(event.user, event.person),
                    headline=f"answered via {event.via.channel}", body=event.text)
    if isinstance(event, AgentSelected):
        return make("note", who="opsgate", headline=f"agent {event.agent} ({event.reason})")
    if isinstance(event, ActionProposed):
        how = "by command" if event.source == "command" else "by the model"
        details = _args(event.arguments)
        if event.call is not None:
            details.append(("model", f"{event.call.model}, {event.call.latency_ms} ms"))
        if event.second_look is not None:  # the question was checked by a second call and stood
            details.append(("second look", f"{event.second_look.model}, {event.second_look.latency_ms} ms"))
        return make("agent", who=thread.agent or "agent",
                    headline=f"proposed {event.name} ({how})", body=event.reason, details=details)
    if isinstance(event, ApprovalRequested):
        whom = ", ".join(event.approvers) if event.approvers else "the local inbox user (open mode)"
        details = [("approvers", whom)]
        if event.group:
            details.append(("group", event.group))
        if event.four_eyes:
            requester = acted(event.requester, event.requester_person) if event.requester else "the requester"
            details.append(("four-eyes", f"{requester} may not approve"))
        return make("approval", who="opsgate", headline=f"{event.name} needs approval",
                    details=details)
    if isinstance(event, ApprovalDecided) and event.closed_by != "decision":
        headline = "expired: nobody decided in time" if event.closed_by == "expiry" else "withdrew the request"
        return make("rejected", who=acted(event.by, event.by_person), headline=headline, body=event.comment)
    if isinstance(event, ApprovalReminded):
        return make("note", who="opsgate", headline=f"reminder {event.number} sent to the approvers",
                    body=", ".join(event.approvers) or None)
    if isinstance(event, ApprovalEscalated):
        return make("approval", who="opsgate", headline=f"escalated to group {event.group}: they may decide too",
                    body=", ".join(event.approvers) or None)
    if isinstance(event, ThreadCancelled):
        return make("rejected", who=acted(event.by, event.by_person), headline=f"cancelled via {event.via.channel}",
                    body=event.reason)
    if isinstance(event, ApprovalDecided):
        verb = "approved" if event.approved else "rejected"
        details = [(c.field, f"{_text(c.old)} → {_text(c.new)}") for c in event.changes]
        edited = " with changes" if event.changes else ""
        return make("approved" if event.approved else "rejected", who=acted(event.by, event.by_person),
                    headline=f"{verb}{edited} via {event.via.channel}", body=event.comment, details=details)
    if isinstance(event, DecisionRefused):
        return make("failed", who=acted(event.by, event.by_person),
                    headline=f"decision refused via {event.via.channel}", body=event.reason)
    if isinstance(event, HumanInputRequested):
        return make("agent", who=thread.agent or "agent", headline="asks", body=event.message)
    if isinstance(event, ExecutionStarted):
        approver = acted(event.approved_by, event.approved_by_person)
        by = f" (approved by {approver})" if event.approved_by else ""
        return make("note", who="opsgate", headline=f"running {event.name}{by}")
    if isinstance(event, ActionResult):
        state = "succeeded" if event.ok else "failed"
        return make("result" if event.ok else "failed", who="opsgate",
                    headline=f"{event.name} {state} in {event.latency_ms} ms", body=event.result)
    if isinstance(event, ErrorEvent):
        return make("error", who="opsgate", headline=f"error ({event.kind})", body=event.message)
    if isinstance(event, ProposalBlocked):
        field = f" ({event.field})" if event.field else ""
        return make("note", who="opsgate", headline=f"stopped by the {event.rule} rule{field}", body=event.reason)
    if isinstance(event, Done):
        return make("agent", who=thread.agent or "agent", headline="replied", body=event.message)
    return None


def timeline(thread: Thread) -> list[Item]:
    """Every event worth showing, oldest first; one result line per execution.

    A command's reply repeats its action's result word for word (Slack and email need it as their answer);
    here the result line already says it, so that reply is left out.
    """
    lines: list[Item] = []
    result: ActionResult | None = None
    for event in thread.events:
        if isinstance(event, Done) and result is not None and event.message in (
                result.result, f"{result.name} failed: {result.result}"):
            continue
        if isinstance(event, ActionResult | Done | UserMessage | HumanInputReceived):
            result = event if isinstance(event, ActionResult) else None
        if (line := item(event, thread)) is not None:
            lines.append(line)
    return lines
