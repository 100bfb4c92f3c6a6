"""End to end through a real `opsgate serve` process: signature checks and the approval flows.

Signed Slack requests in, the fake Slack Web API out; the scripted model server plays the model and the webhook
receiver the deploy system. Ack times are measured on the client side.
"""

from __future__ import annotations

import time

import pytest

from tests.channels.slack.e2e_support import (
    ACK_BUDGET,
    APPROVER,
    CHANNEL,
    OTHER_APPROVER,
    REQUESTER,
    STRANGER,
    both_databases,
    button_value,
    card_after_mention,
    card_text,
    deploy_call,
    one_thread,
    timed,
)
from tests.channels.slack.slack_requests import SlackSender, click, load, mention, submission
from tests.support.api_client import ApiClient
from tests.support.fake_slack import FakeSlack
from tests.support.model_replies import tool_call
from tests.support.model_server import ScriptedModelServer
from tests.support.processes import OpsgateProcess
from tests.support.webhook_receiver import WebhookReceiver

# --- the protocol -------------------------------------------------------------------------------------------


async def test_url_verification_is_answered(sender: SlackSender) -> None:
    """Slack's url_verification handshake gets the challenge back."""
    response = await sender.event(load("url_verification"))
    assert response.status_code == 200
    assert response.json() == {"challenge": load("url_verification")["challenge"]}


@pytest.mark.parametrize("problem", ["wrong secret", "stale timestamp", "unsigned"])
async def test_bad_or_stale_signature_is_401_and_changes_nothing(
    sender: SlackSender, api: ApiClient, model_server: ScriptedModelServer, problem: str
) -> None:
    """A request not signed with our secret, or signed more than 5 minutes ago, is refused with 401."""
    envelope = mention("deploy api", ts="1732270000.000100", event_id="EvForged")
    if problem == "wrong secret":
        response = await sender.event(envelope, secret="not-the-secret")
    elif problem == "stale timestamp":
        response = await sender.event(envelope, timestamp=int(time.time()) - 301)
    else:
        response = await sender.http.post("/slack/events", json=envelope)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid request"}
    assert (await api.http.get("/threads")).json() == []
    assert model_server.requests == []


# --- approval flows -----------------------------------------------------------------------------------------


@both_databases
async def test_mention_approve_executes_once_and_updates_the_card(
    sender: SlackSender, slack: FakeSlack, model_server: ScriptedModelServer, webhook: WebhookReceiver,
    api: ApiClient,
) -> None:
    """Mention -> card with buttons in the request's thread -> approver clicks -> runs once -> card updated."""
    model_server.script(deploy_call(), tool_call("done_for_now", message="api 1.4.2 is live"))
    root = "1732270000.000100"
    card = await card_after_mention(sender, slack, ts=root)
    assert card.args["channel"] == CHANNEL and card.args["thread_ts"] == root
    assert "please ship api 1.4.2 to production" in model_server.last_user_content()
    assert "<@UBOT0001>" not in model_server.all_text()
    body = card_text(card.args["blocks"])
    assert "*environment*\\nproduction" in body and "hotfix for login" in body
    assert webhook.calls == []

    card_ts = slack.calls_to("chat.postMessage")[0]
    posted_ts = next(ts for (ch, ts), m in slack.messages.items() if m["text"] == card.args["text"])
    assert card_ts.args["thread_ts"] == root
    response, seconds = await timed(sender.interaction(click(
        "opsgate_approve", button_value(card, "opsgate_approve"), user=APPROVER, channel=CHANNEL,
        message_ts=posted_ts, thread_ts=root)))
    assert response.status_code == 200 and seconds < ACK_BUDGET

    [update] = await slack.wait_for("chat.update")
    assert (update.args["channel"], update.args["ts"]) == (CHANNEL, posted_ts)
    assert not any(b["type"] == "actions" for b in update.args["blocks"])
    assert f"*Approved* by <@{APPROVER}> at <!date^" in card_text(update.args["blocks"])
    await slack.wait_for("chat.postMessage", lambda c: c.args.get("text") == "api 1.4.2 is live")
    thread = await one_thread(api)
    assert thread["status"] == "done"
    assert len(webhook.accepted) == 1
    assert webhook.accepted[0].json["approved_by"] == APPROVER

    # A second approver's late click: told who decided; nothing runs again.
    await sender.interaction(click("opsgate_approve", button_value(card, "opsgate_approve"), user=OTHER_APPROVER,
                                   channel=CHANNEL, message_ts=posted_ts, thread_ts=root))
    [note] = await slack.wait_for("chat.postEphemeral")
    assert note.args["user"] == OTHER_APPROVER and note.args["text"] == f"Already approved by <@{APPROVER}>."
    assert len(webhook.calls) == 1
    replies = [c for c in slack.calls_to("chat.postMessage")]
    assert all(c.args.get("thread_ts") == root for c in replies)


@both_databases
async def test_non_approver_click_is_refused_and_nothing_runs(
    sender: SlackSender, slack: FakeSlack, model_server: ScriptedModelServer, webhook: WebhookReceiver,
    api: ApiClient, opsgate: OpsgateProcess,
) -> None:
    """A click by someone who is not an approver: private refusal, audit record, no decision, no execution."""
    model_server.script(deploy_call())
    card = await card_after_mention(sender, slack)
    value = button_value(card, "opsgate_approve")
    for user in (STRANGER, REQUESTER):  # REQUESTER is not an approver either
        response = await sender.interaction(click("opsgate_approve", value, user=user, channel=CHANNEL,
                                                  message_ts="1732270010.000200", thread_ts="1732270000.000100"))
        assert response.status_code == 200
    notes = await slack.wait_for("chat.postEphemeral", count=2)
    assert [n.args["user"] for n in notes] == [STRANGER, REQUESTER]
    assert "is not one of the approvers" in notes[0].args["text"]
    record = await opsgate.wait_for_log(event="approval_refused", user=STRANGER)
    assert record["channel"] == "slack"
    thread = await one_thread(api)
    assert thread["status"] == "waiting_for_approval"
    assert [e["by"] for e in thread["events"] if e["type"] == "decision_refused"] == [STRANGER, REQUESTER]
    assert webhook.calls == [] and slack.calls_to("chat.update") == []


@both_databases
async def test_reject_opens_modal_and_the_reason_reaches_the_model(
    sender: SlackSender, slack: FakeSlack, model_server: ScriptedModelServer, webhook: WebhookReceiver,
    api: ApiClient,
) -> None:
    """Reject -> views.open with the click's trigger_id -> reason required -> it reaches the model."""
    model_server.script(deploy_call(), tool_call("done_for_now", message="ok, not deploying"))
    card = await card_after_mention(sender, slack)
    press = click("opsgate_reject", button_value(card, "opsgate_reject"), user=APPROVER, channel=CHANNEL,
                  message_ts="1732270010.000200", thread_ts="1732270000.000100")
    response = await sender.interaction(press)
    assert response.status_code == 200
    [opened] = await slack.wait_for("views.open")
    assert opened.args["trigger_id"] == press["trigger_id"]
    view = opened.args["view"]
    assert view["callback_id"] == "opsgate_reject"

    empty, seconds = await timed(sender.interaction(submission(
        "opsgate_reject", view["private_metadata"], {"reason": {"reason": " "}}, user=APPROVER)))
    assert empty.status_code == 200 and seconds < ACK_BUDGET
    assert empty.json()["response_action"] == "errors" and "reason" in empty.json()["errors"]

    done = await sender.interaction(submission(
        "opsgate_reject", view["private_metadata"], {"reason": {"reason": "release freeze until Monday"}},
        user=APPROVER))
    assert done.status_code == 200 and done.text == ""
    await model_server.wait_for_requests(2)
    assert "release freeze until Monday" in model_server.last_user_content()
    [update] = await slack.wait_for("chat.update")
    assert f"*Rejected* by <@{APPROVER}>" in card_text(update.args["blocks"])
    assert "release freeze until Monday" in card_text(update.args["blocks"])
    await slack.wait_for("chat.postMessage", lambda c: c.args.get("text") == "ok, not deploying")
    assert (await one_thread(api))["status"] == "done"
    assert webhook.calls == []


async def test_edit_approves_the_edited_arguments(
    sender: SlackSender, slack: FakeSlack, model_server: ScriptedModelServer, webhook: WebhookReceiver,
) -> None:
    """Edit -> modal with the arguments -> a bad value is refused under its field -> the edit runs once."""
    model_server.script(deploy_call(), tool_call("done_for_now", message="api 1.4.3 is live"))
    card = await card_after_mention(sender, slack)
    await sender.interaction(click("opsgate_edit", button_value(card, "opsgate_edit"), user=APPROVER,
                                   channel=CHANNEL, message_ts="1732270010.000200", thread_ts="1732270000.000100"))
    [opened] = await slack.wait_for("views.open")
    view = opened.args["view"]
    initial = {b["block_id"]: b["element"].get("initial_value") for b in view["blocks"] if b["type"] == "input"}
    assert initial == {"arg_0": "api", "arg_1": "1.4.2", "arg_2": "production"}
    values: dict[str, dict[str, str | None]] = {
        "arg_0": {"value": "api"}, "arg_1": {"value": "1.4.3 beta"}, "arg_2": {"value": "production"},
    }
    refused = await sender.interaction(submission("opsgate_edit", view["private_metadata"], values, user=APPROVER))
    assert refused.json()["response_action"] == "errors" and list(refused.json()["errors"]) == ["arg_1"]
    values["arg_1"] = {"value": "1.4.3"}
    accepted = await sender.interaction(submission("opsgate_edit", view["private_metadata"], values, user=APPROVER))
    assert accepted.status_code == 200 and accepted.text == ""
    [update] = await slack.wait_for("chat.update")
    assert "*version*: 1.4.2 → 1.4.3" in card_text(update.args["blocks"])
    await slack.wait_for("chat.postMessage", lambda c: c.args.get("text") == "api 1.4.3 is live")
    assert [c.json["arguments"]["version"] for c in webhook.accepted] == ["1.4.3"]
