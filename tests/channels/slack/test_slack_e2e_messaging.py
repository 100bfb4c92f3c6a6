"""End to end through `opsgate serve`: retried deliveries, fast acks, Web API retries, DMs and /opsgate."""

from __future__ import annotations

import asyncio

from tests.channels.slack.e2e_support import (
    ACK_BUDGET,
    CHANNEL,
    REQUESTER,
    both_databases,
    card_after_mention,
    deploy_call,
    one_thread,
    timed,
)
from tests.channels.slack.slack_requests import SlackSender, direct_message, mention, slash
from tests.support.api_client import ApiClient
from tests.support.fake_slack import FakeSlack
from tests.support.model_replies import slow, tool_call
from tests.support.model_server import ScriptedModelServer
from tests.support.webhook_receiver import WebhookReceiver

# --- delivery semantics -------------------------------------------------------------------------------------


@both_databases
async def test_retried_delivery_makes_one_thread(
    sender: SlackSender, slack: FakeSlack, model_server: ScriptedModelServer, api: ApiClient
) -> None:
    """The same event delivered again (X-Slack-Retry-Num 1, 2) is acknowledged and ignored."""
    model_server.script(tool_call("done_for_now", message="hello"))
    envelope = mention("hi", user=REQUESTER, ts="1732270000.000100", event_id="EvOnce")
    for retry in (None, 1, 2):
        response = await sender.event(envelope, retry_num=retry)
        assert response.status_code == 200
    await slack.wait_for("chat.postMessage", lambda c: c.args.get("text") == "hello")
    thread = await one_thread(api)
    assert [e["type"] for e in thread["events"]].count("user_message") == 1
    assert len(model_server.requests) == 1


async def test_ack_is_fast_while_the_model_is_slow(
    sender: SlackSender, slack: FakeSlack, model_server: ScriptedModelServer, api: ApiClient
) -> None:
    """With the model taking 5 s, the mention is still acknowledged well within Slack's 3 s."""
    model_server.script(slow(5.0, tool_call("done_for_now", message="that took a while")))
    acks = []
    for n in range(3):
        ts = f"173227000{n}.000100"
        response, seconds = await timed(sender.event(mention(f"request {n}", ts=ts, event_id=f"EvSlow{n}")))
        assert response.status_code == 200
        acks.append(seconds)
    print(f"ack seconds with a 5 s model: {[round(a, 3) for a in acks]}")
    assert max(acks) < ACK_BUDGET
    # The raw events were committed before each ack; the threads follow from them in the background.
    deadline = asyncio.get_running_loop().time() + 10
    while len((await api.http.get("/threads")).json()) < 3:
        assert asyncio.get_running_loop().time() < deadline, "threads were not made from the recorded events"
        await asyncio.sleep(0.05)
    assert len((await api.http.get("/threads")).json()) == 3
    await slack.wait_for("chat.postMessage", lambda c: c.args.get("text") == "that took a while", timeout=20)


async def test_rate_limited_web_api_is_retried(
    sender: SlackSender, slack: FakeSlack, model_server: ScriptedModelServer
) -> None:
    """chat.postMessage answered 429 (Retry-After: 1): the card is posted on the retry."""
    model_server.script(deploy_call())
    slack.fail_next("chat.postMessage", 1, status=429, retry_after=1)
    await card_after_mention(sender, slack)
    statuses = [c.status for c in slack.calls_to("chat.postMessage", ok_only=False)]
    assert statuses == [429, 200]


async def test_slack_outage_delays_but_loses_nothing(
    sender: SlackSender, slack: FakeSlack, model_server: ScriptedModelServer
) -> None:
    """Slack answering 503 for a while: the outbox retries later and the reply still arrives once."""
    model_server.script(tool_call("done_for_now", message="still here"))
    slack.fail_next("chat.postMessage", 5, status=503, error="service_unavailable")
    response = await sender.event(mention("ping", ts="1732270000.000100", event_id="EvOutage"))
    assert response.status_code == 200
    [reply] = await slack.wait_for("chat.postMessage", timeout=30)
    assert reply.args["text"] == "still here"
    assert [c.status for c in slack.calls_to("chat.postMessage", ok_only=False)] == [503] * 5 + [200]


# --- DMs and the slash command ------------------------------------------------------------------------------


async def test_direct_message_is_answered_in_its_thread(
    sender: SlackSender, slack: FakeSlack, model_server: ScriptedModelServer, api: ApiClient
) -> None:
    """A DM starts a thread; a question is posted in the DM's thread and the reply there continues it."""
    model_server.script(
        tool_call("request_more_information", message="Which environment?"),
        tool_call("rollback", service="billing", environment="production"),  # second look: production unsaid
        tool_call("done_for_now", message="rolled back billing in staging"),
    )
    root = "1732270200.000400"
    await sender.event(direct_message("rollback billing", ts=root, event_id="EvDm1"))
    [question] = await slack.wait_for("chat.postMessage")
    assert (question.args["channel"], question.args["thread_ts"]) == ("D0BOBDM01", root)
    assert question.args["text"] == ":question: Which environment?"
    await sender.event(direct_message("staging", ts="1732270300.000500", thread_ts=root, event_id="EvDm2"))
    await slack.wait_for("chat.postMessage", lambda c: c.args.get("text") == "rolled back billing in staging")
    thread = await one_thread(api)
    assert [e["type"] for e in thread["events"]].count("human_input_received") == 1


async def test_slash_command_runs_the_explicit_command(
    sender: SlackSender, slack: FakeSlack, webhook: WebhookReceiver, model_server: ScriptedModelServer
) -> None:
    """/opsgate deploy ... -> !deploy ...: answered privately, then a root post and the thread under it.

    An explicit command never asks the model: the result itself is the closing reply."""
    response, seconds = await timed(sender.command(slash("deploy service=api version=1.4.2 environment=staging")))
    assert response.status_code == 200 and seconds < ACK_BUDGET
    assert "!deploy service=api version=1.4.2 environment=staging" in response.text
    root, result, done = await slack.wait_for("chat.postMessage", count=3)
    assert root.args["channel"] == CHANNEL and not root.args.get("thread_ts")
    assert root.args["text"] == f"<@{REQUESTER}> asked: `!deploy service=api version=1.4.2 environment=staging`"
    root_ts = next(ts for (ch, ts), m in slack.messages.items() if m["text"] == root.args["text"])
    assert result.args["thread_ts"] == done.args["thread_ts"] == root_ts
    assert result.args["text"].startswith(":white_check_mark: `deploy`")
    assert done.args["text"].startswith("deploy of api 1.4.2 to staging sent to the webhook")
    assert model_server.requests == []
    assert len(webhook.accepted) == 1
    assert webhook.accepted[0].json["arguments"]["environment"] == "staging"
