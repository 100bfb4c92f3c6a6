"""A thread as a value: its events, and everything derived from them (status, pending approval, next work).

Nothing here does I/O. The worker asks ``next_work`` what to do; status is cached in SQL only for queries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

from bot.events import (
    ActionProposed,
    ActionResult,
    AgentSelected,
    ApprovalDecided,
    ApprovalEscalated,
    ApprovalRequested,
    ContextFetched,
    Done,
    ErrorEvent,
    Event,
    HumanInputReceived,
    HumanInputRequested,
    Quote,
    ThreadCancelled,
    UserMessage,
    Via,
)
from bot.flow import ANNOTATIONS, Flow, aside, folded
from bot.work import CallModel, Execute, Finish, Route, RunCommand, Wait, Work

ThreadStatus = Literal["running", "waiting_for_approval", "waiting_for_human", "done", "failed"]
STATUSES: tuple[ThreadStatus, ...] = ("running", "waiting_for_approval", "waiting_for_human", "done", "failed")
# How a finished request ended (bot/thread.py ``outcome``); None while it runs or waits.
Outcome = Literal["executed", "rejected", "expired", "cancelled", "answered", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("executed", "rejected", "expired", "cancelled", "answered", "failed")


class PendingApproval(BaseModel):
    """The approval a thread is waiting for."""

    approval_id: str
    action_id: str
    action: str
    arguments: dict[str, Any]
    reason: str | None = None
    group: str | None = None
    approvers: list[str] = Field(default_factory=list)
    requester: str | None = None
    requester_person: str | None = None
    four_eyes: bool = False
    requested_at: datetime
    quotes: list[Quote] = Field(default_factory=list)  # people's own words in the request (who claims what)
    claims: list[str] = Field(default_factory=list)  # claims of authority found in them
    expires_at: datetime | None = None
    on_expiry: Literal["reject", "stop"] = "reject"
    escalated_to: str | None = None  # a group whose members may decide too, since the escalation
    reminders: int = 0  # reminders sent so far
    summary: str | None = None  # the action as its agent describes it (Action.describe)


_CLOSED: dict[str, Outcome] = {"decision": "rejected", "expiry": "expired", "withdrawal": "cancelled"}

_PENDING = frozenset({"approval_requested", "approval_decided", "approval_escalated", "approval_reminded"})
MAX_CONSECUTIVE_ERRORS = 3


class Thread(BaseModel):
    """A thread: id, agent, and its events in order."""

    id: str
    agent: str | None = None
    events: list[Event] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # next_work and pending, computed once per list of events (status, the journal, the engine and the service
    # all ask); keyed by the event count because events are only ever appended, and copies carry the cache.
    # next_work reads the events' fold (bot/flow.py), which an append advances by its own events only.
    _work: tuple[int, Work] | None = PrivateAttr(default=None)
    _flow: Flow | None = PrivateAttr(default=None)
    _pending: tuple[int, PendingApproval | None] | None = PrivateAttr(default=None)

    @property
    def seq(self) -> int:
        """How many events are stored; the next append must expect exactly this."""
        return len(self.events)

    def only_annotations_after(self, seq: int) -> bool:
        """Whether every event after the first ``seq`` is an annotation (a refused click, a routing note): nothing
        that changes what happens next."""
        return all(e.type in ANNOTATIONS for e in self.events[seq:])

    def with_events(self, new: list[Event]) -> Thread:
        agent = next((e.agent for e in reversed(new) if isinstance(e, AgentSelected)), self.agent)
        updated = self.model_copy(update={"events": [*self.events, *new], "agent": agent})
        # _find_pending reads only _PENDING's types: an append of none of them leaves the pending approval as it was.
        pending = self._private()["_pending"]
        if pending is not None and pending[0] == len(self.events) and all(e.type not in _PENDING for e in new):
            updated._private()["_pending"] = (len(updated.events), pending[1])
        return updated

    # --- who and where --------------------------------------------------------------------------------------

    @property
    def first_message(self) -> UserMessage | None:
        return next((e for e in self.events if isinstance(e, UserMessage)), None)

    @property
    def requester(self) -> str | None:
        first = self.first_message
        return first.user if first else None

    @property
    def requester_person(self) -> str | None:
        """The person who started the thread, as resolved when they did (None in threads from before people)."""
        first = self.first_message
        return first.person if first else None

    @property
    def origin(self) -> Via | None:
        first = self.first_message
        return first.via if first else None

    @property
    def title(self) -> str:
        first = self.first_message
        text = " ".join(first.text.split()) if first else ""
        return text[:80] + ("…" if len(text) > 80 else "")

    # --- derived state --------------------------------------------------------------------------------------

    def _folded(self) -> Flow:
        private = self._private()
        flow = private["_flow"] = folded(private["_flow"], self.events)
        return flow

    def fetched_for(self, agent: str) -> bool:
        """Whether ``agent`` already fetched its context into this thread (it does so once)."""
        return any(isinstance(e, ContextFetched) and e.agent == agent for e in self.events)

    def proposal(self, action_id: str) -> ActionProposed | None:
        """The first proposal of ``action_id``."""
        return self._folded().proposals.get(action_id)

    def decision(self, approval_id: str) -> ApprovalDecided | None:
        return next(
            (e for e in self.events if isinstance(e, ApprovalDecided) and e.approval_id == approval_id), None
        )

    def approval_request(self, approval_id: str) -> ApprovalRequested | None:
        return next(
            (e for e in self.events if isinstance(e, ApprovalRequested) and e.approval_id == approval_id), None
        )

    def approver_person(self, action_id: str) -> str | None:
        """The person whose approval cleared ``action_id`` (None when none did, or before people)."""
        return next((e.by_person for e in self.events
                     if isinstance(e, ApprovalDecided) and e.action_id == action_id and e.approved), None)

    @property
    def pending(self) -> PendingApproval | None:
        """The undecided approval request, if any (at most one at a time)."""
        private = self._private()
        cached = private["_pending"]
        if cached is None or cached[0] != len(self.events):
            cached = private["_pending"] = (len(self.events), self._find_pending())
        return cached[1]

    def _find_pending(self) -> PendingApproval | None:
        decided = {e.approval_id for e in self.events if isinstance(e, ApprovalDecided)}
        for index in range(len(self.events) - 1, -1, -1):
            event = self.events[index]
            if isinstance(event, ApprovalRequested) and event.approval_id not in decided:
                later = self.events[index + 1:]
                escalated = next((e.group for e in later
                                  if isinstance(e, ApprovalEscalated) and e.approval_id == event.approval_id), None)
                return PendingApproval(
                    approval_id=event.approval_id, action_id=event.action_id, action=event.name,
                    arguments=event.arguments, reason=event.reason, group=event.group,
                    approvers=event.approvers, requester=event.requester,
                    requester_person=event.requester_person, four_eyes=event.four_eyes,
                    requested_at=event.at, quotes=event.quotes, claims=event.claims,
                    expires_at=event.expires_at, on_expiry=event.on_expiry,
                    escalated_to=escalated,
                    reminders=sum(1 for e in later if e.type == "approval_reminded"
                                  and getattr(e, "approval_id", None) == event.approval_id),
                    summary=event.summary,
                )
        return None

    @property
    def consecutive_errors(self) -> int:
        count = 0
        for event in reversed(self.events):
            if aside(event):
                continue
            if not (isinstance(event, ErrorEvent) and event.kind == "invalid_output"):
                break
            count += 1
        return count

    @property
    def steps_since_human(self) -> int:
        """Model calls since the last thing a person said; bounded by OPSGATE_MAX_STEPS."""
        count = 0
        for event in reversed(self.events):
            if isinstance(event, UserMessage | HumanInputReceived):
                break
            if isinstance(event, ActionProposed | ErrorEvent) and event.call is not None:
                count += 1
        return count

    @property
    def heard_from_person_last(self) -> bool:
        """Whether the next model step is the first since a person's message (the last thing in the flow is theirs)."""
        return isinstance(self._folded().last, UserMessage | HumanInputReceived)

    @property
    def last_human_text(self) -> str | None:
        for event in reversed(self.events):
            if isinstance(event, UserMessage | HumanInputReceived):
                return event.text
        return None

    def next_work(self) -> Work:
        """What the worker must do next; a pure function of the events."""
        private = self._private()
        cached = private["_work"]
        if cached is None or cached[0] != len(self.events):
            cached = private["_work"] = (len(self.events), self._decide_work())
        return cached[1]

    def _private(self) -> dict[str, Any]:
        # The caches' dict itself: reading ``self._work`` goes through pydantic's __getattr__, which raises and
        # catches an AttributeError inside on every access (1.4% of a benchmark's loop for ``status``).
        return self.__pydantic_private__  # type: ignore[return-value]

    def _decide_work(self) -> Work:
        flow = self._folded()
        if flow.last is None:
            return Wait("done")
        if self.pending is not None:
            return Wait("waiting_for_approval")
        if flow.unfinished:  # a crash between intent and result: resume with the same key, whatever came after
            unfinished = flow.unfinished[0]
            return Execute(unfinished.action_id, unfinished.name, unfinished.arguments, unfinished.approved_by,
                           unfinished)
        if flow.cancelled:
            return Wait("done")  # stopped by the requester: nothing more runs until a new message
        return self._work_after(flow.last)

    def _work_after(self, last: Event) -> Work:
        """What follows the flow's last event, when no approval is pending, no execution unfinished and no
        request cancelled."""
        if isinstance(last, UserMessage | HumanInputReceived):
            if self.agent is None:
                return Route()
            text = last.text.strip()
            return RunCommand(text) if text.startswith("!") else CallModel()
        if isinstance(last, ActionProposed):
            return Execute(last.action_id, last.name, last.arguments, None, None)
        if isinstance(last, ApprovalDecided):
            proposal = self.proposal(last.action_id)
            if last.closed_by == "expiry" and self._stops_on_expiry(last.approval_id):
                return Wait("done")
            if not last.approved:
                if proposal is not None and proposal.source == "command":
                    reason = f": {last.comment}" if last.comment else ""
                    return Finish(f"{proposal.name} was rejected by {last.by}{reason}")
                return CallModel()
            arguments = last.arguments if last.arguments is not None else (proposal.arguments if proposal else {})
            name = proposal.name if proposal else ""
            return Execute(last.action_id, name, arguments, last.by, None)
        if isinstance(last, ActionResult):
            proposal = self.proposal(last.action_id)
            if proposal is not None and proposal.source == "command":
                return Finish(last.result if last.ok else f"{last.name} failed: {last.result}")
            return CallModel()
        if isinstance(last, ErrorEvent):
            return Wait("failed") if last.kind in ("step_limit", "model", "internal") else CallModel()
        if isinstance(last, HumanInputRequested):
            return Wait("waiting_for_human")
        if isinstance(last, Done):
            return Wait("done")
        return Wait("failed")

    def _stops_on_expiry(self, approval_id: str) -> bool:
        request = self.approval_request(approval_id)
        return request is not None and request.on_expiry == "stop"

    @property
    def outcome(self) -> Outcome | None:
        """How the latest request ended: executed, rejected, expired, cancelled, answered or failed.

        None while it runs or waits. Read from the events after the last message that started a request: the
        last action result, rejection, expiry or cancellation decides; a request with none of them was answered.
        """
        status = self.status
        if status == "failed":
            return "failed"
        if status != "done":
            return None
        found: Outcome = "answered"
        for event in reversed(self.events):
            if isinstance(event, UserMessage):
                break
            if isinstance(event, ThreadCancelled):
                return "cancelled"
            if found != "answered":
                continue
            if isinstance(event, ActionResult) and self._acted(event):
                found = "executed" if event.ok else "failed"
            elif isinstance(event, ApprovalDecided) and not event.approved:
                found = _CLOSED[event.closed_by]
        return found

    def _acted(self, result: ActionResult) -> bool:
        """An action result that counts as executing something (not a reply or a question)."""
        return result.name not in ("done_for_now", "request_more_information")

    @property
    def status(self) -> ThreadStatus:
        work = self.next_work()
        return work.status if isinstance(work, Wait) else "running"

    @property
    def resolved_error_ids(self) -> set[str]:
        """Errors followed by a valid proposal: hidden from the model's context (factor 9)."""
        resolved: set[str] = set()
        open_errors: list[str] = []
        for event in self.events:
            if isinstance(event, ErrorEvent) and event.kind == "invalid_output":
                open_errors.append(event.id)
            elif isinstance(event, ActionProposed):
                resolved.update(open_errors)
                open_errors = []
        return resolved
