"""``Thread.next_work`` reads the events in one pass; it decides exactly what the rules say when each is read with
a pass of its own (the reference below is the earlier code of that part, kept here as the specification)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.events import (
    ActionProposed,
    ActionResult,
    ApprovalDecided,
    ApprovalRequested,
    ContextFetched,
    ErrorEvent,
    Event,
    ExecutionStarted,
    HumanInputReceived,
    HumanInputRequested,
    ThreadCancelled,
    UserMessage,
)
from bot.flow import ANNOTATIONS, SIDE_ERRORS
from bot.thread import Thread
from bot.work import Execute, Wait, Work
from tests.bot.test_thread_growth import _ACTIONS, _APPROVALS, _event


def reference_work(thread: Thread) -> Work:
    """The rules, each reading the events on its own."""
    events = thread.events
    flow = [e for e in events
            if e.type not in ANNOTATIONS and not (isinstance(e, ErrorEvent) and e.kind in SIDE_ERRORS)]
    if not flow:
        return Wait("done")
    if thread.pending is not None:
        return Wait("waiting_for_approval")
    finished = {e.action_id for e in events if isinstance(e, ActionResult)}
    unfinished = next((e for e in events if isinstance(e, ExecutionStarted) and e.action_id not in finished), None)
    if unfinished is not None:
        return Execute(unfinished.action_id, unfinished.name, unfinished.arguments, unfinished.approved_by,
                       unfinished)
    for event in reversed(flow):
        if isinstance(event, ThreadCancelled):
            return Wait("done")
        if isinstance(event, UserMessage):
            break
    return thread._work_after(flow[-1])  # the rules for the last event: the same code, not the pass under test


def _invalid(event: Event) -> bool:
    return isinstance(event, ErrorEvent) and event.kind == "invalid_output"


def _more(kind: str, action: str, approval: str) -> Event:
    """Events the growth test does not make: cancellations, questions, answers, commands, expiries, side errors."""
    return {
        "cancelled": lambda: ThreadCancelled(by="bob"),
        "asked": lambda: HumanInputRequested(message="which version?", action_id=action),
        "answered": lambda: HumanInputReceived(text="1.2.3", user="bob"),
        "command": lambda: UserMessage(text=" !deploy service=api", user="bob"),
        "by_command": lambda: ActionProposed(action_id=action, name="deploy", source="command"),
        "expired": lambda: ApprovalDecided(approval_id=approval, action_id=action, approved=False, by="opsgate",
                                           closed_by="expiry"),
        "edited": lambda: ApprovalDecided(approval_id=approval, action_id=action, approved=True, by="alice",
                                          arguments={"service": "web"}),
        "failed": lambda: ActionResult(action_id=action, name="deploy", ok=False, result="no"),
        "delivery": lambda: ErrorEvent(kind="delivery", message="slack is down"),
        "model_error": lambda: ErrorEvent(kind="model", message="refused"),
        "fetched": lambda: ContextFetched(agent="deploy", text="versions"),
        "requested_stop": lambda: ApprovalRequested(approval_id=approval, action_id=action, name="deploy", arguments={},
                                                    approvers=["alice"], requester="bob", on_expiry="stop"),
    }[kind]()


_KINDS = st.sampled_from(["message", "selected", "proposed", "requested", "decided", "rejected", "refused",
                          "reminded", "escalated", "started", "result", "error", "done"])
_MORE = st.sampled_from(["cancelled", "asked", "answered", "command", "by_command", "expired", "edited", "failed",
                         "delivery", "model_error", "fetched", "requested_stop"])
_ANY = st.one_of(st.builds(_event, _KINDS, st.sampled_from(_ACTIONS), st.sampled_from(_APPROVALS)),
                 st.builds(_more, _MORE, st.sampled_from(_ACTIONS), st.sampled_from(_APPROVALS)))


@settings(max_examples=1500, deadline=None)
@given(st.lists(_ANY, max_size=14), st.sampled_from(["deploy", None]))
def test_next_work_is_what_the_rules_read_one_by_one_say(events: list[Event], agent: str | None) -> None:
    grown = Thread(id="t", agent=agent, events=[])  # grown one event at a time: each append advances its fold
    for end in range(len(events) + 1):  # every prefix: each is a thread as it stood after some append
        thread = Thread(id="t", agent=agent, events=events[:end])
        assert thread.next_work() == reference_work(thread)
        for action in _ACTIONS:  # the first proposal of each action, as a pass over the events finds it
            assert thread.proposal(action) == next(
                (e for e in events[:end] if isinstance(e, ActionProposed) and e.action_id == action), None)
        whole = Thread(id="t", agent=grown.agent, events=list(grown.events))  # with_events may have chosen one
        assert grown.next_work() == whole.next_work() == reference_work(whole)
        flow = [e for e in whole.events
                if e.type not in ANNOTATIONS and not (isinstance(e, ErrorEvent) and e.kind in SIDE_ERRORS)]
        trailing = len(flow) - next((i + 1 for i in range(len(flow) - 1, -1, -1) if not _invalid(flow[i])), 0)
        assert (grown.heard_from_person_last, grown.consecutive_errors) == (
            bool(flow) and isinstance(flow[-1], UserMessage | HumanInputReceived), trailing)
        if end < len(events):
            grown = grown.with_events([events[end]])
