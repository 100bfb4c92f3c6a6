"""Thread events: the typed, append-only record that is both the agent's context and the business state.

Every event is a pydantic model with a ``type`` literal; ``Event`` is their discriminated union and
``EVENT_ADAPTER`` reads and writes the JSON stored in SQL. Every string an event is built from is made
storable on both backends as the event is validated (``bot.text``: NUL and lone surrogates become U+FFFD).
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter

from bot.text import StorableModel


class _RandomBytes:
    """The operating system's random bytes (``os.urandom``, what ``secrets`` reads), fetched 4 KiB at a time.

    One getrandom call per id released the GIL several times per step, and each time the event loop waited to
    get it back from the store's writer thread: 12% of a launch's samples (issue 11). Buffering changes neither
    where the bytes come from nor their quality; a forked child starts with an empty buffer, so parent and
    child never hand out the same bytes.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._buffer = b""
        self._used = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._used + n > len(self._buffer):
                self._buffer, self._used = os.urandom(max(self._size, n)), 0
            start, self._used = self._used, self._used + n
            return self._buffer[start:self._used]

    def forget(self) -> None:
        # A new lock: the parent's may have been held by another thread at the fork, and stays held here.
        self._lock = threading.Lock()
        self._buffer, self._used = b"", 0


_RANDOM = _RandomBytes()
os.register_at_fork(after_in_child=_RANDOM.forget)


def new_id() -> str:
    """A fresh random id for threads, events, actions, approvals and timers: 16 characters of lower-case base32
    (``a-z``, ``2-7``), 80 random bits.

    Lower case because ids travel in email Message-IDs and plus-addresses, Slack action and block ids and URLs;
    80 bits because any two of a billion ids are then the same with a chance of about 1 in 2.4 million (the
    birthday bound, n²/2⁸¹), and thread and timer ids are primary keys (a repeat is refused, not merged). Ids
    made before were 32 hex characters (``uuid4().hex``): every reader takes both, an id is compared, never
    parsed.
    """
    # One character per random byte, from its low five bits (256 is 8 × 32: each character is uniform): one C
    # call, 0.7 µs against 1.6 µs for packing 10 bytes into base32 (ids are made for every event).
    return _RANDOM.take(16).translate(_BASE32).decode("ascii")


_BASE32 = bytes(b"abcdefghijklmnopqrstuvwxyz234567"[byte & 31] for byte in range(256))  # the RFC 4648 alphabet


def utcnow() -> datetime:
    return datetime.now(UTC)


_ZERO = timedelta(0)


def _in_utc(value: datetime) -> datetime:
    """An event's time in UTC (a time without a zone is taken as UTC): the store keeps the instant only."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if value.utcoffset() == _ZERO else value.astimezone(UTC)


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
    temperature: float | None = None
    timeout_s: float | None = None


class _Event(StorableModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(default_factory=new_id)
    at: Annotated[datetime, AfterValidator(_in_utc)] = Field(default_factory=utcnow)


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
    # A question the model asked on the first step after a person's message is checked by a second call offered
    # only the agent's actions (bot/model_step.py); when the question stands, that call's cost is kept here.
    second_look: ModelCall | None = None


class Quote(StorableModel):
    """Someone's own words, as written, with who wrote them."""

    by: str | None = None
    text: str


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
    # Who claims what (shown apart on cards and mails): people's own words in this request, quoted as written, and
    # the claims of authority found in them, which never count as a reason and never change the policy.
    quotes: list[Quote] = Field(default_factory=list)
    claims: list[str] = Field(default_factory=list)
    # The request's lifecycle (bot/lifecycle.py), fixed when it was made; None: never (rows written before 0007).
    expires_at: datetime | None = None
    on_expiry: Literal["reject", "stop"] = "reject"
    remind_every_s: float | None = None
    escalate_at: datetime | None = None
    escalate_to: str | None = None
    summary: str | None = None  # the action as its agent describes it to people (Action.describe)


class ArgumentChange(StorableModel):
    field: str
    old: Any = None
    new: Any = None


GuardRule = Literal["grounding", "repeat", "leak", "authority", "needless_question", "ambiguous"]


class ProposalBlocked(_Event):
    """Our code stopped (or cleaned) a model proposal before the policy gate, and why.

    grounding: a field's value was never given (the question that follows names it); repeat: the same
    side-effecting action already ran, was approved or is pending in this request; leak: text for people
    repeated the agent's instructions (replaced); authority: a claim of authority was dropped from the reason;
    needless_question: the model asked (``value``: its question) although, asked again without that option, it
    proposed an action every rule let through (which follows); ambiguous: the request named several options of a
    field and the proposed one needs less scrutiny than another (the question that follows names them).
    """

    type: Literal["proposal_blocked"] = "proposal_blocked"
    action_id: str
    rule: GuardRule
    field: str | None = None
    value: Any = None
    reason: str


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
    # How the request closed: a person's decision, its expiry (``by`` is "opsgate"), or the requester withdrew it.
    closed_by: Literal["decision", "expiry", "withdrawal"] = "decision"


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


class ApprovalReminded(_Event):
    """A pending approval's approvers were reminded (a timer fired); channels post it where they are."""

    type: Literal["approval_reminded"] = "approval_reminded"
    approval_id: str
    number: int  # 1 for the first reminder
    approvers: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None


class ApprovalEscalated(_Event):
    """Nobody decided in time: the escalation group's members may decide too from now on, and are told so."""

    type: Literal["approval_escalated"] = "approval_escalated"
    approval_id: str
    group: str
    approvers: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None


class ThreadCancelled(_Event):
    """The requester withdrew the pending request or stopped the thread; a new message starts it again."""

    type: Literal["thread_cancelled"] = "thread_cancelled"
    by: str
    by_person: str | None = None
    reason: str | None = None
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


# The error kinds people must see in every channel (the thread stops or cannot go on without them); the others
# are for the model (invalid_output: it retries) or are notes about a channel (delivery).
PUBLIC_ERROR_KINDS: frozenset[str] = frozenset({"step_limit", "model", "execution", "internal"})


class ErrorEvent(_Event):
    """Something went wrong in a way the model (or a person) should see."""

    type: Literal["error"] = "error"
    kind: ErrorKind
    message: str
    call: ModelCall | None = None

    @property
    def public(self) -> bool:
        """Whether people must see it: every channel shows exactly these errors."""
        return self.kind in PUBLIC_ERROR_KINDS


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
    | ProposalBlocked
    | ApprovalDecided
    | DecisionRefused
    | ApprovalReminded
    | ApprovalEscalated
    | ThreadCancelled
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

# Event types written by a person's decision, the execution path or a rule that stopped a proposal: the audit
# export reads these.
AUDIT_TYPES = ("approval_requested", "approval_decided", "decision_refused", "approval_escalated", "thread_cancelled",
               "execution_started", "action_result", "proposal_blocked")


def model_calls(event: Event) -> list[ModelCall]:
    """Every model call an event records: its own answer's, and a second look's (metrics, traces, prompt use)."""
    # Through __dict__: a missing attribute on a pydantic model raises and catches inside __getattr__ (~1.5 µs).
    fields = event.__dict__
    found = [fields.get("call"), fields.get("second_look")]
    return [call for call in found if call is not None]
