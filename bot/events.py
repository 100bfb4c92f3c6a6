"""Thread events: the typed, append-only record that is both the agent's context and the business state.

Every event is a pydantic model with a ``type`` literal; ``Event`` is their discriminated union and
``EVENT_ADAPTER`` reads and writes the JSON stored in SQL. Every string an event is built from is made
storable on both backends as the event is validated (``bot.text``: NUL and lone surrogates become U+FFFD).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter

from bot.text import StorableModel


def new_id() -> str:
    """A fresh random id for threads, events, actions and approvals."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Via(StorableModel):
    """Where a message came from or where a reply must go (Slack channel + thread ts, email Message-ID, ...)."""

    model_config = ConfigDict(frozen=True)
    channel: str  # "api", "cli", "web", "slack", "email"
    conversation: str | None = None  # Slack channel id; email thread root Message-ID
    message: str | None = None  # Slack ts of this message; email Message-ID of this message


class ModelCall(StorableModel):
    """What one model call cost and which prompt/model produced it (factor 2)."""

    model: str
    prompt_hash: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0


class _Event(StorableModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(default_factory=new_id)
    at: datetime = Field(default_factory=utcnow)


class UserMessage(_Event):
    """A person's request or follow-up in the thread."""

    type: Literal["user_message"] = "user_message"
    text: str
    user: str | None = None  # the channel identity (Slack id, email address, inbox or CLI name)
    person: str | None = None  # the person it resolved to (bot/people.py); None in rows written before people
    via: Via = Via(channel="api")


class AgentSelected(_Event):
    """Which agent owns the thread, and why (explicit choice, channel mapping, routing model call)."""

    type: Literal["agent_selected"] = "agent_selected"
    agent: str
    reason: str = "explicit"
    call: ModelCall | None = None


class ActionProposed(_Event):
    """The agent's next step: one typed action (name + validated arguments)."""

    type: Literal["action_proposed"] = "action_proposed"
    action_id: str = Field(default_factory=new_id)
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None
    source: Literal["model", "command"] = "model"
    call: ModelCall | None = None


class ApprovalRequested(_Event):
    """Code (not the model) decided that a person must approve the proposed action."""

    type: Literal["approval_requested"] = "approval_requested"
    approval_id: str = Field(default_factory=new_id)
    action_id: str
    name: str
    arguments: dict[str, Any]
    reason: str | None = None
    group: str | None = None
    approvers: list[str] = Field(default_factory=list)
    requester: str | None = None
    requester_person: str | None = None  # fixed at request time; None in rows written before people
    four_eyes: bool = False
    summary: str | None = None  # the action as its agent describes it to people (Action.describe)


class ArgumentChange(StorableModel):
    field: str
    old: Any = None
    new: Any = None


class ApprovalDecided(_Event):
    """A person's decision on a pending approval; the first valid one wins."""

    type: Literal["approval_decided"] = "approval_decided"
    approval_id: str
    action_id: str
    approved: bool
    by: str  # the channel identity that decided
    by_person: str | None = None  # the person behind it; None in rows written before people
    comment: str | None = None
    arguments: dict[str, Any] | None = None  # the edited arguments, when edited
    changes: list[ArgumentChange] = Field(default_factory=list)
    via: Via = Via(channel="api")


class DecisionRefused(_Event):
    """A decision that was not accepted (not an approver, four-eyes, already decided, failed authentication).

    It changes nothing in the flow; it is kept so the audit trail shows every attempt.
    """

    type: Literal["decision_refused"] = "decision_refused"
    approval_id: str | None = None
    by: str | None = None
    by_person: str | None = None
    reason: str
    via: Via = Via(channel="api")


class HumanInputRequested(_Event):
    """The agent (or our code after repeated errors) asks a person for more information."""

    type: Literal["human_input_requested"] = "human_input_requested"
    message: str
    action_id: str | None = None


class HumanInputReceived(_Event):
    """A person's answer to a request for information."""

    type: Literal["human_input_received"] = "human_input_received"
    text: str
    user: str | None = None
    person: str | None = None
    via: Via = Via(channel="api")


class ExecutionStarted(_Event):
    """Intent recorded before a side effect, so an action runs exactly once across crashes."""

    type: Literal["execution_started"] = "execution_started"
    action_id: str
    name: str
    arguments: dict[str, Any]
    idempotency_key: str
    approved_by: str | None = None
    approved_by_person: str | None = None


class ActionResult(_Event):
    """What executing an action returned (or how it failed)."""

    type: Literal["action_result"] = "action_result"
    action_id: str
    name: str
    ok: bool = True
    result: str
    latency_ms: int = 0


ErrorKind = Literal["invalid_output", "step_limit", "model", "delivery", "execution", "internal"]


class ErrorEvent(_Event):
    """Something went wrong in a way the model (or a person) should see."""

    type: Literal["error"] = "error"
    kind: ErrorKind
    message: str
    call: ModelCall | None = None


class Done(_Event):
    """The agent replied and finished for now; a new message reopens the thread."""

    type: Literal["done"] = "done"
    message: str


class ContextFetched(_Event):
    """What the agent fetched before its first model call (factor 13): alert details, recent changes, a runbook."""

    type: Literal["context_fetched"] = "context_fetched"
    agent: str
    text: str
    ok: bool = True  # False: fetching failed; ``text`` says what is missing


Event = Annotated[
    UserMessage
    | AgentSelected
    | ActionProposed
    | ApprovalRequested
    | ApprovalDecided
    | DecisionRefused
    | HumanInputRequested
    | HumanInputReceived
    | ExecutionStarted
    | ActionResult
    | ErrorEvent
    | Done
    | ContextFetched,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_LIST_ADAPTER: TypeAdapter[list[Event]] = TypeAdapter(list[Event])

# Event types written by a person's decision or the execution path: the audit export reads these.
AUDIT_TYPES = ("approval_requested", "approval_decided", "decision_refused", "execution_started", "action_result")
