"""What the rules of ``Thread.next_work`` read from a thread's events, folded one append at a time.

Events are only ever appended, so what the first n events say stays true when more come: an append folds only
its own events. A pass over every event on every step cost ~0.3 µs per event (170 µs a step at 500 events,
most of a long thread's derived state); a fold costs a few µs whatever the length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.events import ActionProposed, ActionResult, ErrorEvent, Event, ExecutionStarted

# Events that only annotate a thread and never change what happens next.
ANNOTATIONS = ("agent_selected", "decision_refused", "proposal_blocked", "approval_reminded", "approval_escalated",
               "context_fetched")
SIDE_ERRORS = ("delivery",)


def aside(event: Event) -> bool:
    """An annotation or a side error (a failed delivery): outside the thread's flow, never what happens next."""
    return event.type in ANNOTATIONS or (isinstance(event, ErrorEvent) and event.kind in SIDE_ERRORS)


@dataclass(frozen=True, slots=True)
class Flow:
    """The fold of a thread's first ``count`` events. Immutable: copies of a thread share it safely."""

    count: int = 0
    tail: Event | None = None  # the last event folded: a list that still holds it there extends what was folded
    last: Event | None = None  # the flow's last event (annotations and side errors left out)
    cancelled: bool = False  # a ThreadCancelled after the last UserMessage
    finished: frozenset[str] = frozenset()  # actions with a result
    unfinished: tuple[ExecutionStarted, ...] = ()  # the first start of each action with no result, in order
    proposals: Mapping[str, ActionProposed] = field(default_factory=dict)  # the first proposal of each action

    def extends(self, events: Sequence[Event]) -> bool:
        """Whether ``events`` begin with the events folded here (the same objects)."""
        return self.count <= len(events) and (self.count == 0 or events[self.count - 1] is self.tail)

    def fold(self, new: Sequence[Event]) -> Flow:
        """This fold with ``new`` appended (a new Flow: this one, which copies of a thread share, stays as it is)."""
        if not new:
            return self
        last, cancelled, unfinished = self.last, self.cancelled, self.unfinished
        # Copied on the first change only, then changed in place: a fold of many events stays linear.
        finished: set[str] | None = None
        proposals: dict[str, ActionProposed] | None = None
        for event in new:
            kind = event.type  # a string compare first: an isinstance chain on every event cost twice as much
            if kind == "action_proposed" and isinstance(event, ActionProposed):
                if event.action_id not in (proposals or self.proposals):
                    if proposals is None:
                        proposals = dict(self.proposals)
                    proposals[event.action_id] = event
            if kind in ANNOTATIONS or (kind == "error" and isinstance(event, ErrorEvent) and event.kind in SIDE_ERRORS):
                continue  # aside(event), inlined: calling it for every event made the fold half again as slow
            last = event
            if kind == "action_result" and isinstance(event, ActionResult):
                if event.action_id not in (finished or self.finished):
                    if finished is None:
                        finished = set(self.finished)
                    finished.add(event.action_id)
                    unfinished = tuple(e for e in unfinished if e.action_id != event.action_id)
            elif kind == "execution_started" and isinstance(event, ExecutionStarted):
                # A start after the action's result, or a second start, changes nothing: the first one counts.
                if (event.action_id not in (finished or self.finished)
                        and all(e.action_id != event.action_id for e in unfinished)):
                    unfinished = (*unfinished, event)
            elif kind == "thread_cancelled":
                cancelled = True
            elif kind == "user_message":
                cancelled = False
        return Flow(self.count + len(new), new[-1], last, cancelled,
                    self.finished if finished is None else frozenset(finished), unfinished,
                    self.proposals if proposals is None else proposals)


def folded(cached: Flow | None, events: Sequence[Event]) -> Flow:
    """The fold of ``events``: ``cached`` advanced by what came after it, or made anew when the list does not
    extend it (a copy given other events)."""
    flow = cached if cached is not None and cached.extends(events) else Flow()
    return flow if flow.count == len(events) else flow.fold(events[flow.count:])
