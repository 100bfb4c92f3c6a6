"""Thread state derived from events: status, next unit of work, error counting, steps, resolved errors."""

from __future__ import annotations

from typing import Any

import pytest

from bot.events import (
    ActionProposed,
    ActionResult,
    AgentSelected,
    ApprovalDecided,
    ApprovalRequested,
    DecisionRefused,
    Done,
    ErrorEvent,
    Event,
    ExecutionStarted,
    HumanInputReceived,
    HumanInputRequested,
    ModelCall,
    UserMessage,
    Via,
)
from bot.thread import Thread
from bot.work import CallModel, Execute, Finish, Route, RunCommand, Wait

CALL = ModelCall(model="m", prompt_hash="h", prompt_tokens=10, completion_tokens=2)
PROD = {"service": "api", "version": "1.4.2", "environment": "production"}
STAGING = {**PROD, "environment": "staging"}


def make(*events: Event, agent: str | None = "deploy") -> Thread:
    return Thread(id="t1", agent=agent, events=list(events))


def ask(text: str = "deploy api 1.4.2 to production", user: str = "bob") -> UserMessage:
    return UserMessage(text=text, user=user, via=Via(channel="slack", conversation="C1"))


def propose(name: str = "deploy", arguments: dict[str, Any] | None = None, **fields: Any) -> ActionProposed:
    return ActionProposed(name=name, arguments=PROD if arguments is None else arguments, **{"call": CALL, **fields})


def request_for(proposal: ActionProposed, **fields: Any) -> ApprovalRequested:
    return ApprovalRequested(action_id=proposal.action_id, name=proposal.name, arguments=proposal.arguments,
                             group="deployers", approvers=["alice"], requester="bob", four_eyes=True, **fields)


def decided(request: ApprovalRequested, approved: bool = True, **fields: Any) -> ApprovalDecided:
    return ApprovalDecided(approval_id=request.approval_id, action_id=request.action_id, approved=approved,
                           by="alice", **fields)


def started(proposal: ActionProposed, approved_by: str | None = "alice") -> ExecutionStarted:
    return ExecutionStarted(action_id=proposal.action_id, name=proposal.name, arguments=proposal.arguments,
                            idempotency_key=f"t1:{proposal.action_id}", approved_by=approved_by)


def result(proposal: ActionProposed, ok: bool = True) -> ActionResult:
    return ActionResult(action_id=proposal.action_id, name=proposal.name, ok=ok, result="deployed")


def invalid(message: str = "unknown tool 'x'") -> ErrorEvent:
    return ErrorEvent(kind="invalid_output", message=message, call=CALL)


def delivery_error() -> ErrorEvent:
    return ErrorEvent(kind="delivery", message="slack delivery failed: channel_not_found")


def refused(request: ApprovalRequested | None = None) -> DecisionRefused:
    return DecisionRefused(approval_id=request.approval_id if request else None, by="mallory",
                           reason="mallory is not one of the approvers")


# --- status and next work for each event sequence -------------------------------------------------------


def test_new_message_without_agent_is_routed() -> None:
    """A first message with no agent chosen yet needs routing."""
    thread = make(ask(), agent=None)
    assert thread.next_work() == Route()
    assert thread.status == "running"


def test_new_message_with_agent_calls_the_model() -> None:
    """Once an agent owns the thread, a person's message asks the model for the next step."""
    thread = make(ask(), AgentSelected(agent="deploy"))
    assert thread.next_work() == CallModel()
    assert thread.status == "running"


def test_explicit_command_runs_without_the_model() -> None:
    """A message starting with ! becomes a RunCommand with the stripped text."""
    thread = make(ask("  !deploy service=api version=1.2.3 environment=staging \n"))
    assert thread.next_work() == RunCommand("!deploy service=api version=1.2.3 environment=staging")


def test_proposal_without_approval_executes() -> None:
    """A proposal not followed by an approval request is cleared to run, with no approver."""
    proposal = propose(arguments=STAGING)
    thread = make(ask(), proposal)
    assert thread.next_work() == Execute(proposal.action_id, "deploy", STAGING, None, None)
    assert thread.status == "running"


def test_approval_request_waits_and_exposes_the_pending_approval() -> None:
    """An undecided approval request makes the thread wait and is its pending approval."""
    proposal = propose(reason="hotfix")
    request = request_for(proposal, reason="hotfix")
    thread = make(ask(), proposal, request)
    assert thread.next_work() == Wait("waiting_for_approval")
    assert thread.status == "waiting_for_approval"
    pending = thread.pending
    assert pending is not None
    assert (pending.approval_id, pending.action_id, pending.action) == (
        request.approval_id, proposal.action_id, "deploy")
    assert pending.arguments == PROD
    assert (pending.reason, pending.group, pending.approvers, pending.requester, pending.four_eyes) == (
        "hotfix", "deployers", ["alice"], "bob", True)
    assert pending.requested_at == request.at


def test_approved_action_executes_with_the_approver() -> None:
    """After approval the proposal's arguments run, recorded as approved by the decider."""
    proposal = propose()
    request = request_for(proposal)
    thread = make(ask(), proposal, request, decided(request))
    assert thread.pending is None
    assert thread.next_work() == Execute(proposal.action_id, "deploy", PROD, "alice", None)
    assert thread.status == "running"


def test_approval_with_edits_executes_the_edited_arguments() -> None:
    """Edited arguments on the decision replace the proposed ones."""
    proposal = propose()
    request = request_for(proposal)
    edited = {**PROD, "version": "1.4.3"}
    thread = make(ask(), proposal, request, decided(request, arguments=edited))
    work = thread.next_work()
    assert isinstance(work, Execute)
    assert work.arguments == edited


def test_rejection_goes_back_to_the_model() -> None:
    """A rejection lets the model re-plan; nothing executes."""
    proposal = propose()
    request = request_for(proposal)
    thread = make(ask(), proposal, request, decided(request, approved=False, comment="code freeze"))
    assert thread.next_work() == CallModel()
    assert thread.pending is None


def test_crash_after_execution_started_resumes_with_the_same_key() -> None:
    """ExecutionStarted without a result (a crash mid-execution) resumes the same execution and key."""
    proposal = propose()
    request = request_for(proposal)
    intent = started(proposal)
    thread = make(ask(), proposal, request, decided(request), intent)
    work = thread.next_work()
    assert isinstance(work, Execute)
    assert work.started is intent
    assert (work.action_id, work.name, work.arguments, work.approved_by) == (
        proposal.action_id, "deploy", PROD, "alice")
    assert work.started.idempotency_key == f"t1:{proposal.action_id}"
    assert thread.status == "running"


def test_crash_recovery_survives_an_annotation_after_the_intent() -> None:
    """A refused click or delivery error logged after the intent does not hide the unfinished execution."""
    proposal = propose(arguments=STAGING)
    intent = started(proposal, approved_by=None)
    thread = make(ask(), proposal, intent, refused(), delivery_error())
    work = thread.next_work()
    assert isinstance(work, Execute) and work.started is intent


def test_crash_recovery_survives_a_message_after_the_intent() -> None:
    """A person writing while the tool runs, then a crash: the started execution is still resumed, not lost."""
    proposal = propose(arguments=STAGING)
    intent = started(proposal, approved_by=None)
    thread = make(ask(), proposal, intent, UserMessage(text="how is it going?", user="bob"))
    work = thread.next_work()
    assert isinstance(work, Execute) and work.started is intent


def test_result_goes_back_to_the_model() -> None:
    """After an action's result the model decides what is next."""
    proposal = propose(arguments=STAGING)
    thread = make(ask(), proposal, started(proposal, None), result(proposal))
    assert thread.next_work() == CallModel()


def test_failed_result_also_goes_back_to_the_model() -> None:
    """A failed tool is a result the model sees, not a failed thread."""
    proposal = propose(arguments=STAGING)
    thread = make(ask(), proposal, started(proposal, None), result(proposal, ok=False))
    assert thread.next_work() == CallModel()
    assert thread.status == "running"


def test_explicit_command_finishes_with_its_result_without_the_model() -> None:
    """A command's result (or failure) is the reply: Finish, not CallModel."""
    command = propose(arguments=STAGING, source="command", call=None)
    ran = make(ask("!deploy"), command, started(command, None), result(command))
    assert ran.next_work() == Finish("deployed")
    assert ran.status == "running"
    failed = make(ask("!deploy"), command, started(command, None), result(command, ok=False))
    assert failed.next_work() == Finish("deploy failed: deployed")


def test_rejected_command_finishes_naming_who_and_why() -> None:
    """A rejected command does not go to the model: the reply says who rejected it and why."""
    command = propose(source="command", call=None)
    request = request_for(command)
    with_comment = make(ask("!deploy"), command, request, decided(request, approved=False, comment="freeze"))
    assert with_comment.next_work() == Finish("deploy was rejected by alice: freeze")
    without = make(ask("!deploy"), command, request, decided(request, approved=False))
    assert without.next_work() == Finish("deploy was rejected by alice")


def test_question_to_human_waits_for_human() -> None:
    """request_more_information pauses the thread for a person."""
    proposal = propose("request_more_information", {"message": "which version?"})
    thread = make(ask(), proposal, HumanInputRequested(message="which version?", action_id=proposal.action_id))
    assert thread.next_work() == Wait("waiting_for_human")
    assert thread.status == "waiting_for_human"


def test_answer_to_a_question_resumes() -> None:
    """A person's answer makes the thread runnable again."""
    thread = make(ask(), HumanInputRequested(message="which version?"), HumanInputReceived(text="1.4.2"))
    assert thread.next_work() == CallModel()


def test_done_is_done_and_a_new_message_reopens() -> None:
    """Done finishes the thread; a later message makes it run again."""
    proposal = propose("done_for_now", {"message": "deployed"})
    thread = make(ask(), proposal, Done(message="deployed"))
    assert thread.status == "done"
    assert thread.next_work() == Wait("done")
    reopened = thread.with_events([UserMessage(text="and to staging?", user="bob")])
    assert reopened.status == "running"
    assert reopened.next_work() == CallModel()


@pytest.mark.parametrize(("kind", "status"), [
    ("step_limit", "failed"), ("internal", "failed"), ("invalid_output", "running"), ("execution", "running"),
])
def test_error_kinds_decide_between_failed_and_retry(kind: str, status: str) -> None:
    """A step limit or internal error fails the thread; invalid output goes back to the model."""
    thread = make(ask(), ErrorEvent(kind=kind, message="x"))  # type: ignore[arg-type]
    assert thread.status == status
    assert thread.next_work() == (Wait("failed") if status == "failed" else CallModel())


def test_thread_without_events_has_nothing_to_do() -> None:
    """An empty thread is not runnable."""
    assert isinstance(make().next_work(), Wait)
    assert make().status != "running"


# --- annotations never change the flow ---------------------------------------------------------------------


@pytest.mark.parametrize("annotation", [refused, delivery_error, lambda: AgentSelected(agent="deploy")])
def test_annotations_keep_every_status(annotation: Any) -> None:
    """Refused decisions, delivery errors and agent notes after any state leave status and work unchanged."""
    proposal = propose()
    request = request_for(proposal)
    staging = propose(arguments=STAGING)
    bases = [
        make(ask(), proposal, request),
        make(ask(), HumanInputRequested(message="which version?")),
        make(ask(), propose("done_for_now", {"message": "ok"}), Done(message="ok")),
        make(ask(), ErrorEvent(kind="step_limit", message="stop")),
        make(ask(), staging),
        make(ask(), staging, started(staging, None), result(staging)),
    ]
    for base in bases:
        noted = base.with_events([annotation(), annotation()])
        assert noted.status == base.status, [e.type for e in base.events]
        assert noted.next_work() == base.next_work()
        assert noted.pending == base.pending


def test_refused_decision_does_not_clear_the_pending_approval() -> None:
    """A refused click on the pending approval leaves it pending."""
    proposal = propose()
    request = request_for(proposal)
    thread = make(ask(), proposal, request, refused(request))
    assert thread.pending is not None and thread.pending.approval_id == request.approval_id


def test_delivery_error_does_not_count_as_an_invalid_output() -> None:
    """Delivery errors are neither consecutive model errors nor a reason to call the model."""
    thread = make(ask(), invalid(), delivery_error(), invalid(), delivery_error())
    assert thread.consecutive_errors == 2


# --- counting ---------------------------------------------------------------------------------------------


def test_consecutive_errors_count_only_the_trailing_invalid_outputs() -> None:
    """Invalid outputs are counted from the end until anything else happened."""
    assert make(ask()).consecutive_errors == 0
    assert make(ask(), invalid()).consecutive_errors == 1
    assert make(ask(), invalid(), invalid(), invalid()).consecutive_errors == 3
    assert make(ask(), invalid(), invalid(), propose(arguments=STAGING), invalid()).consecutive_errors == 1
    assert make(ask(), invalid(), invalid(), HumanInputRequested(message="?"),
                HumanInputReceived(text="1.4.2")).consecutive_errors == 0
    assert make(ask(), invalid(), ErrorEvent(kind="execution", message="x")).consecutive_errors == 0


def test_steps_since_human_counts_model_calls_after_the_last_person() -> None:
    """Model-made proposals and errors since the last message count; command proposals and results do not."""
    one = propose("list_deployments", {})
    two = propose("list_deployments", {})
    command = ActionProposed(name="list_deployments", arguments={}, source="command")
    thread = make(ask(), one, result(one), invalid(), two, result(two), command)
    assert thread.steps_since_human == 3
    answered = thread.with_events([HumanInputReceived(text="go on"), invalid()])
    assert answered.steps_since_human == 1
    assert thread.with_events([UserMessage(text="again")]).steps_since_human == 0


def test_resolved_errors_are_the_ones_followed_by_a_proposal() -> None:
    """Errors before a valid proposal are resolved; errors after the last proposal stay open."""
    first, second, third = invalid("a"), invalid("b"), invalid("c")
    proposal = propose(arguments=STAGING)
    other = ErrorEvent(kind="execution", message="tool crashed")
    thread = make(ask(), first, second, proposal, result(proposal), other, third)
    assert thread.resolved_error_ids == {first.id, second.id}
    assert make(ask(), first).resolved_error_ids == set()


# --- who, where, agent ----------------------------------------------------------------------------------


def test_requester_origin_and_title_come_from_the_first_message() -> None:
    """The first message gives the requester, where to reply, and a title of at most 80 characters."""
    long = "deploy   api\n" + "x" * 200
    thread = make(ask(long, user="bob"), UserMessage(text="later", user="carol"))
    assert thread.requester == "bob"
    assert thread.origin == Via(channel="slack", conversation="C1")
    assert thread.title.startswith("deploy api x") and thread.title.endswith("…")
    assert len(thread.title) == 81
    assert make().requester is None and make().title == ""


def test_agent_selected_sets_the_agent() -> None:
    """with_events takes the thread's agent from the last AgentSelected and counts seq."""
    thread = make(ask(), agent=None)
    assert thread.seq == 1
    updated = thread.with_events([AgentSelected(agent="deploy")])
    assert updated.agent == "deploy"
    assert updated.seq == 2
    assert thread.agent is None and thread.seq == 1  # the original value is unchanged
