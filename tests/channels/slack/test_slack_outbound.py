"""Thread events -> Slack outbox items: replies in the request's Slack thread, cards, card updates."""

from __future__ import annotations

from datetime import UTC, datetime

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
    HumanInputRequested,
    ThreadCancelled,
    UserMessage,
    Via,
)
from bot.thread import Thread
from channels.slack.slack_outbound import MESSAGE_ADAPTER, SlackCardUpdate, SlackPost, messages_for, outbound

SLACK_VIA = Via(channel="slack", conversation="C0OPS0001", message="1732270000.000100")


def thread_of(*events: Event, via: Via = SLACK_VIA) -> Thread:
    first = UserMessage(text="deploy api 1.4.2 to production", user="UALICE01", via=via)
    return Thread(id="th1", events=[]).with_events([first, AgentSelected(agent="deploy"), *events])


def proposal_and_request() -> tuple[ActionProposed, ApprovalRequested]:
    args = {"service": "api", "version": "1.4.2", "environment": "production"}
    proposal = ActionProposed(action_id="ac1", name="deploy", arguments=args, reason="asked")
    return proposal, ApprovalRequested(approval_id="ap1", action_id="ac1", name="deploy", arguments=args,
                                       approvers=["UCAROL01"], requester="UALICE01")


def test_approval_request_posts_a_card_in_the_requests_thread() -> None:
    """The card goes to the origin channel with thread_ts = the request's ts, marked to remember its ts."""
    proposal, request = proposal_and_request()
    thread = thread_of(proposal, request)
    [card] = messages_for(thread, [proposal, request])
    assert isinstance(card, SlackPost)
    assert (card.channel, card.thread_ts, card.role, card.approval_id) == (
        "C0OPS0001", "1732270000.000100", "card", "ap1")
    assert card.blocks and any(b["type"] == "actions" for b in card.blocks)


def test_decision_updates_the_card() -> None:
    """A decision (from any channel) becomes a chat.update of that approval's card."""
    proposal, request = proposal_and_request()
    decision = ApprovalDecided(approval_id="ap1", action_id="ac1", approved=True, by="UCAROL01",
                               via=Via(channel="web"))
    thread = thread_of(proposal, request, decision)
    [update] = messages_for(thread, [decision])
    assert isinstance(update, SlackCardUpdate)
    assert update.approval_id == "ap1"
    assert not any(b["type"] == "actions" for b in update.blocks)


def test_questions_results_errors_and_done_are_posted_in_the_thread() -> None:
    """request_more_information, action results, fatal errors and done_for_now all reply in the thread."""
    events: list[Event] = [
        HumanInputRequested(message="Which version?"),
        ActionResult(action_id="ac1", name="deploy", result="deployed api 1.4.2"),
        ActionResult(action_id="ac2", name="rollback", ok=False, result="webhook refused"),
        ErrorEvent(kind="step_limit", message="stopped after 20 steps"),
        Done(message="api <1.4.2> is live"),
    ]
    posts = messages_for(thread_of(*events), events)
    assert [p.thread_ts for p in posts] == ["1732270000.000100"] * 5
    final = posts[-1]
    assert isinstance(final, SlackPost) and "Outcome: :x: *Failed*" in str(final.blocks)  # how the request ended
    assert [p.text for p in posts] == [
        ":question: Which version?",
        ":white_check_mark: `deploy`: deployed api 1.4.2",
        ":x: `rollback` failed: webhook refused",
        ":warning: stopped after 20 steps",
        "api &lt;1.4.2&gt; is live",
    ]


def test_quiet_events_post_nothing() -> None:
    """Retried model errors, delivery notes, refusals and the request itself post nothing."""
    events: list[Event] = [
        ErrorEvent(kind="invalid_output", message="bad json"),
        ErrorEvent(kind="delivery", message="slack delivery failed"),
        DecisionRefused(approval_id="ap1", by="UEVE0001", reason="not an approver"),
        UserMessage(text="and staging too", user="UALICE01", via=SLACK_VIA),
    ]
    assert messages_for(thread_of(*events), events) == []


def test_threads_from_other_channels_are_not_posted_to_slack() -> None:
    """Only threads that started in Slack get Slack messages."""
    done = Done(message="ok")
    assert messages_for(thread_of(done, via=Via(channel="web")), [done]) == []
    assert outbound(thread_of(done, via=Via(channel="email", conversation="<m@x>")), [done]) == []


def test_slash_command_thread_posts_its_root_first() -> None:
    """A /opsgate thread has no Slack message: its first item posts the root, the rest wait for its ts."""
    via = Via(channel="slack", conversation="C0OPS0001", message=None)
    first = UserMessage(text="!deploy service=api", user="UALICE01", via=via)
    thread = Thread(id="th1", events=[]).with_events([first])
    [root] = messages_for(thread, [first])
    assert isinstance(root, SlackPost) and root.role == "root" and root.thread_ts is None
    assert root.text == "<@UALICE01> asked: `!deploy service=api`"
    done = Done(message="ok")
    [reply] = messages_for(thread.with_events([done]), [done])
    assert isinstance(reply, SlackPost) and reply.role == "reply" and reply.thread_ts is None


def test_outbox_items_round_trip_through_json() -> None:
    """The stored payload reads back as the same typed message."""
    proposal, request = proposal_and_request()
    [item] = outbound(thread_of(proposal, request), [request])
    assert item.channel == "slack" and item.thread_id == "th1"
    message = MESSAGE_ADAPTER.validate_python(item.payload)
    assert isinstance(message, SlackPost) and message.approval_id == "ap1"


EXPIRES = datetime(2030, 1, 1, 4, 0, tzinfo=UTC)


def test_reminders_and_escalations_mention_who_may_decide_under_the_card() -> None:
    """A reminder and an escalation reply in the request's thread, mentioning the approvers and the expiry."""
    proposal, request = proposal_and_request()
    request = request.model_copy(update={"expires_at": EXPIRES})
    reminder = ApprovalReminded(approval_id="ap1", number=2, approvers=["UCAROL01"], expires_at=EXPIRES)
    escalation = ApprovalEscalated(approval_id="ap1", group="oncall", approvers=["UDAVE001", "eve@example.com"])
    thread = thread_of(proposal, request, reminder, escalation)
    posts = messages_for(thread, [reminder, escalation])
    assert [p.thread_ts for p in posts] == ["1732270000.000100"] * 2
    assert posts[0].text.startswith(":bell: Reminder 2: *deploy service=api version=1.4.2 environment=production*")
    assert "<@UCAROL01>" in posts[0].text and "<!date^1893470400^" in posts[0].text
    assert "escalated to group *oncall*" in posts[1].text and "<@UDAVE001>, eve@example.com" in posts[1].text


def test_the_card_offers_withdraw_and_says_when_it_expires() -> None:
    """The approval card has a Withdraw button and the expiry; an expired card says Expired, not Rejected."""
    proposal, request = proposal_and_request()
    request = request.model_copy(update={"expires_at": EXPIRES})
    [card] = messages_for(thread_of(proposal, request), [request])
    assert isinstance(card, SlackPost) and card.blocks
    buttons = [e["action_id"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]]
    assert "opsgate_withdraw" in buttons
    assert any("Expires" in str(b) for b in card.blocks)
    expiry = ApprovalDecided(approval_id="ap1", action_id="ac1", approved=False, by="opsgate",
                             closed_by="expiry", comment="expired: nobody decided within 4h")
    [update] = messages_for(thread_of(proposal, request, expiry), [expiry])
    assert isinstance(update, SlackCardUpdate) and "*Expired* by opsgate" in str(update.blocks)


def test_a_withdrawal_and_model_errors_are_posted() -> None:
    """A cancellation says who and why; a model refusal is a public error every channel shows."""
    events: list[Event] = [
        ErrorEvent(kind="model", message="the model refused: bad key"),
        ThreadCancelled(by="UALICE01", reason="wrong version"),
    ]
    posts = messages_for(thread_of(*events), events)
    assert [p.text for p in posts] == [
        ":warning: the model refused: bad key",
        ":leftwards_arrow_with_hook: *Cancelled* by <@UALICE01>: wrong version",
    ]


def test_requests_from_other_channels_get_their_card_in_the_approvals_channel() -> None:
    """An API thread's request: a card of its own in the approvals channel, linked to the inbox; reminders go
    under it, the decision updates it."""
    proposal, request = proposal_and_request()
    api = Via(channel="api")
    reminder = ApprovalReminded(approval_id="ap1", number=1, approvers=["UCAROL01"])
    decision = ApprovalDecided(approval_id="ap1", action_id="ac1", approved=True, by="UCAROL01",
                               via=Via(channel="slack"))
    thread = thread_of(proposal, request, reminder, decision, via=api)
    assert messages_for(thread, [request]) == []  # no approvals channel: nothing in Slack
    [card] = messages_for(thread, [request], approvals_channel="C0APPROVE", inbox_url="https://og.example.com")
    assert isinstance(card, SlackPost) and card.blocks
    assert (card.channel, card.thread_ts, card.role, card.approval_id) == ("C0APPROVE", None, "lone_card", "ap1")
    assert "<https://og.example.com/t/th1|open the thread in the inbox>" in str(card.blocks[0])
    [under] = messages_for(thread, [reminder], approvals_channel="C0APPROVE")
    assert isinstance(under, SlackPost) and (under.role, under.approval_id) == ("under_card", "ap1")
    assert "<@UCAROL01>" in under.text
    [update] = messages_for(thread, [decision], approvals_channel="C0APPROVE")
    assert isinstance(update, SlackCardUpdate) and update.lone and update.channel == "C0APPROVE"
    done = Done(message="ok")
    assert messages_for(thread.with_events([done]), [done], approvals_channel="C0APPROVE") == []
