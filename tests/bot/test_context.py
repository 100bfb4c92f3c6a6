"""The model's context: compact XML-like blocks, resolved errors hidden, decisions and edits shown."""

from __future__ import annotations

from bot.context import INSTRUCTIONS, MAX_EARLIER_CHARS, build_messages, render_event, render_thread
from bot.events import (
    EVENT_LIST_ADAPTER,
    ActionProposed,
    ActionResult,
    AgentSelected,
    ApprovalDecided,
    ApprovalRequested,
    ArgumentChange,
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

CALL = ModelCall(model="gpt-test", prompt_hash="abc123", prompt_tokens=900, completion_tokens=40, latency_ms=700)
PROD = {"service": "api", "version": "1.4.2", "environment": "production"}


def make(*events: Event) -> Thread:
    return Thread(id="t1", agent="deploy", events=list(events))


def production_flow(approved: bool, **decision: object) -> tuple[ActionProposed, list[Event]]:
    proposal = ActionProposed(name="deploy", arguments=PROD, reason="hotfix", call=CALL)
    request = ApprovalRequested(action_id=proposal.action_id, name="deploy", arguments=PROD,
                                approvers=["alice@example.com", "carol@example.com"], requester="bob")
    decided = ApprovalDecided(approval_id=request.approval_id, action_id=proposal.action_id, approved=approved,
                              by="alice@example.com", **decision)  # type: ignore[arg-type]
    return proposal, [UserMessage(text="ship api 1.4.2 to prod", user="bob", via=Via(channel="slack")),
                      AgentSelected(agent="deploy"), proposal, request, decided]


def test_user_message_is_a_block_with_who_and_where() -> None:
    """A message renders as <user_message user=... via=...> with its text."""
    block = render_event(UserMessage(text="  deploy api  ", user="bob", via=Via(channel="email")))
    assert block == '<user_message user="bob" via="email">\ndeploy api\n</user_message>'


def test_proposal_is_a_block_named_after_the_action_with_its_fields() -> None:
    """A proposed action shows its name and one line per argument (ids are bookkeeping, not context)."""
    proposal = ActionProposed(name="deploy", arguments=PROD, call=CALL)
    assert render_event(proposal) == "<deploy>\nservice: api\nversion: 1.4.2\nenvironment: production\n</deploy>"
    assert render_event(ActionProposed(name="list_deployments", arguments={})) is not None
    assert "/>" in (render_event(ActionProposed(name="list_deployments", arguments={})) or "")


def test_rejection_comment_is_shown_to_the_model() -> None:
    """A rejection renders with who rejected and the comment; the decided request itself is not repeated."""
    _, events = production_flow(False, comment="code freeze until Monday")
    text = render_thread(make(*events))
    assert '<approval_rejected by="alice@example.com">\ncode freeze until Monday\n</approval_rejected>' in text
    assert "<approval_requested" not in text
    pending = render_thread(make(*events[:-1]))
    assert '<approval_requested action="deploy" approvers="alice@example.com,carol@example.com"/>' in pending


def test_edited_arguments_are_shown_as_changes() -> None:
    """An approval with edits shows each changed field old -> new, after the comment."""
    _, events = production_flow(True, comment="use the patch", arguments={**PROD, "version": "1.4.3"},
                                changes=[ArgumentChange(field="version", old="1.4.2", new="1.4.3")])
    text = render_thread(make(*events))
    assert "<approval_approved by=\"alice@example.com\"" in text
    assert "use the patch\nedited: version: 1.4.2 -> 1.4.3\n</approval_approved>" in text
    _, no_comment = production_flow(True, changes=[ArgumentChange(field="version", old="1.4.2", new="1.4.3")])
    assert ">\nedited: version: 1.4.2 -> 1.4.3\n</approval_approved>" in render_thread(make(*no_comment))


def test_resolved_errors_are_hidden_and_open_errors_shown() -> None:
    """Errors the model recovered from disappear; the ones since its last valid step stay visible."""
    old = ErrorEvent(kind="invalid_output", message="unknown tool 'launch'", call=CALL)
    proposal = ActionProposed(name="list_deployments", arguments={}, call=CALL)
    result = ActionResult(action_id=proposal.action_id, name="list_deployments", result="api 1.4.1 production")
    fresh = ErrorEvent(kind="invalid_output", message="arguments for deploy are not valid JSON", call=CALL)
    text = render_thread(make(UserMessage(text="what runs?"), old, proposal, result, fresh))
    assert "unknown tool" not in text
    assert '<error kind="invalid_output">\narguments for deploy are not valid JSON\n</error>' in text
    assert "<list_deployments_result>\napi 1.4.1 production\n</list_deployments_result>" in text


def test_delivery_errors_and_bookkeeping_are_left_out() -> None:
    """Delivery problems, agent selection, execution intents and refused clicks are not model context."""
    proposal = ActionProposed(name="deploy", arguments=PROD)
    thread = make(
        UserMessage(text="go"), AgentSelected(agent="deploy", reason="routing"), proposal,
        ExecutionStarted(action_id=proposal.action_id, name="deploy", arguments=PROD, idempotency_key="k-123"),
        ErrorEvent(kind="delivery", message="slack delivery failed: channel_not_found"),
        DecisionRefused(by="mallory", reason="not an approver"),
    )
    text = render_thread(thread)
    for hidden in ("slack delivery failed", "routing", "k-123", "mallory", "agent_selected", "execution_started"):
        assert hidden not in text


def test_failed_result_is_marked_and_long_results_are_cut() -> None:
    """A failed result carries ok="false"; a huge result is truncated with an ellipsis."""
    failed = render_event(ActionResult(action_id="a", name="deploy", ok=False, result="HTTP 400"))
    assert failed == '<deploy_result ok="false">\nHTTP 400\n</deploy_result>'
    huge = render_event(ActionResult(action_id="a", name="list_deployments", result="x" * 10_000)) or ""
    assert len(huge) < 2100 and huge.count("x") == 2000 and "…" in huge


def test_intents_render_as_question_answer_and_reply() -> None:
    """request_more_information and done_for_now show as the question, the answer and the reply only."""
    ask = ActionProposed(name="request_more_information", arguments={"message": "which version?"}, call=CALL)
    done = ActionProposed(name="done_for_now", arguments={"message": "deployed 1.4.2"}, call=CALL)
    text = render_thread(make(
        UserMessage(text="deploy api", user="bob"), ask, HumanInputRequested(message="which version?"),
        HumanInputReceived(text="1.4.2", user="bob"), done, Done(message="deployed 1.4.2"),
    ))
    assert text.count("which version?") == 1
    assert "<question_to_human>\nwhich version?\n</question_to_human>" in text
    assert '<human_response user="bob">\n1.4.2\n</human_response>' in text
    assert text.endswith("<reply>\ndeployed 1.4.2\n</reply>")
    assert "done_for_now" not in text and "request_more_information" not in text


def test_context_is_much_smaller_than_a_json_dump() -> None:
    """A 20-event thread renders to well under half the size of its JSON events."""
    events: list[Event] = [UserMessage(text="what is deployed for api? then ship 1.4.2 to prod", user="bob"),
                           AgentSelected(agent="deploy")]
    for n in range(3):
        events.append(ErrorEvent(kind="invalid_output", message=f"unknown tool 'x{n}'", call=CALL))
        listing = ActionProposed(name="list_deployments", arguments={"service": "api"}, call=CALL)
        events += [listing, ExecutionStarted(action_id=listing.action_id, name="list_deployments",
                                             arguments={"service": "api"},
                                             idempotency_key=f"t1:{listing.action_id}"),
                   ActionResult(action_id=listing.action_id, name="list_deployments",
                                result="2024-05-01 10:00 deploy api 1.4.1 production (approved by alice)")]
    deploy, production = production_flow(True)
    events += production[2:]
    events += [DecisionRefused(by="mallory", reason="not an approver"),
               ActionResult(action_id=deploy.action_id, name="deploy", result="deployed api 1.4.2 to production"),
               Done(message="api 1.4.2 is live in production")]
    assert len(events) == 20
    thread = make(*events)
    rendered = render_thread(thread)
    dumped = EVENT_LIST_ADAPTER.dump_json(thread.events).decode()
    assert len(rendered) * 3 < len(dumped), (len(rendered), len(dumped))
    # The request is finished: its lookups are one line each, the deploy one line, the reply in full.
    assert "<list_deployments_result>" not in rendered
    assert rendered.count('<executed action="list_deployments service=api" ok="true"/>') == 3
    assert '<executed action="deploy service=api version=1.4.2 environment=production" ok="true"/>' in rendered
    assert rendered.endswith("<reply>\napi 1.4.2 is live in production\n</reply>")


def test_a_new_request_sees_earlier_ones_compacted_and_its_own_in_full() -> None:
    """After a reply, earlier work keeps what people said, replies and executed actions; the new request is full."""
    _, first = production_flow(False, comment="not on Friday")
    listing = ActionProposed(name="list_deployments", arguments={"service": "api"}, call=CALL)
    events = [*first, Done(message="ok, not deploying"), UserMessage(text="what runs now?", user="bob"), listing,
              ActionResult(action_id=listing.action_id, name="list_deployments", result="api 1.4.1 production")]
    text = render_thread(make(*events))
    cut = text.index("what runs now?")
    earlier, current = text[:cut], text[cut:]
    assert "<deploy>" not in earlier and "not on Friday" in earlier and "ok, not deploying" in earlier
    assert "<list_deployments>" in current and "api 1.4.1 production" in current


def test_messages_are_the_prompt_then_one_user_message_with_the_thread() -> None:
    """build_messages sends the agent's prompt as system and the rendered thread as a single user message."""
    thread = make(UserMessage(text="deploy api", user="bob"))
    messages = build_messages("  You are the deploy agent.\n", thread)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == "You are the deploy agent."
    assert messages[1]["content"].startswith(INSTRUCTIONS)
    assert render_thread(thread) in messages[1]["content"]


def test_a_long_history_keeps_its_newest_part_and_says_what_was_left_out() -> None:
    """Earlier requests beyond MAX_EARLIER_CHARS are left out, oldest first, with a note; the current one is whole."""
    events: list[Event] = []
    for n in range(200):
        events += [UserMessage(text=f"request {n:03d} " + "x" * 2000, user="bob"), Done(message=f"reply {n:03d}")]
    events.append(UserMessage(text="now " + "y" * 20_000, user="bob"))
    text = render_thread(make(*events))
    assert len(text) < MAX_EARLIER_CHARS + 20_000 + 500
    assert text.startswith('<earlier_history_omitted blocks="')
    assert "request 199" in text and "reply 199" in text and "request 000" not in text
    assert text.endswith("y" * 20_000 + "\n</user_message>")
    kept = text.count("<user_message") - 1
    omitted = int(text.split('blocks="', 1)[1].split('"', 1)[0])
    assert omitted + kept + text.count("<reply>") == 400


def test_a_short_history_is_not_cut() -> None:
    """Below the budget nothing is left out and no note is added."""
    text = render_thread(make(UserMessage(text="a"), Done(message="b"), UserMessage(text="c")))
    assert "omitted" not in text and text.startswith("<user_message")
