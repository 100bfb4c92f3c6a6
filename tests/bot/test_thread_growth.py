"""A thread grown one append at a time (``with_events``, carrying what it derived) says exactly what the same
events say when read whole: next work, status, pending approval, outcome."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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
    UserMessage,
)
from bot.thread import Thread

_ACTIONS = ["a1", "a2"]
_APPROVALS = ["p1", "p2"]


def _event(kind: str, action: str, approval: str) -> Event:
    args = {"service": "api"}
    return {
        "message": lambda: UserMessage(text="deploy api", user="bob"),
        "selected": lambda: AgentSelected(agent="deploy"),
        "proposed": lambda: ActionProposed(action_id=action, name="deploy", arguments=args),
        "requested": lambda: ApprovalRequested(approval_id=approval, action_id=action, name="deploy",
                                               arguments=args, approvers=["alice"], requester="bob"),
        "decided": lambda: ApprovalDecided(approval_id=approval, action_id=action, approved=True, by="alice"),
        "rejected": lambda: ApprovalDecided(approval_id=approval, action_id=action, approved=False, by="alice"),
        "refused": lambda: DecisionRefused(approval_id=approval, by="eve", reason="not an approver"),
        "reminded": lambda: ApprovalReminded(approval_id=approval, number=1),
        "escalated": lambda: ApprovalEscalated(approval_id=approval, group="leads"),
        "started": lambda: ExecutionStarted(action_id=action, name="deploy", arguments=args,
                                            idempotency_key=f"t:{action}"),
        "result": lambda: ActionResult(action_id=action, name="deploy", ok=True, result="done"),
        "error": lambda: ErrorEvent(kind="invalid_output", message="bad"),
        "done": lambda: Done(message="ok"),
    }[kind]()


_EVENTS = st.builds(_event, st.sampled_from(["message", "selected", "proposed", "requested", "decided",
                                             "rejected", "refused", "reminded", "escalated", "started", "result",
                                             "error", "done"]),
                    st.sampled_from(_ACTIONS), st.sampled_from(_APPROVALS))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(_EVENTS, min_size=1, max_size=3), min_size=1, max_size=8))
def test_a_thread_grown_append_by_append_says_what_its_events_say(appends: list[list[Event]]) -> None:
    grown = Thread(id="t", agent="deploy", events=[])
    for new in appends:
        _ = grown.status, grown.pending  # derived before each append, as the journal and the service do
        grown = grown.with_events(new)
        whole = Thread(id="t", agent=grown.agent, events=list(grown.events))
        assert grown.pending == whole.pending
        assert grown.next_work() == whole.next_work()
        assert (grown.status, grown.outcome) == (whole.status, whole.outcome)
