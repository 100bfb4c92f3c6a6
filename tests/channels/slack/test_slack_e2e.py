"""End to end through a real `opsgate serve` process: signed Slack requests in, the fake Slack Web API out.

The scripted model server plays the model, the webhook receiver plays the deploy system. Requests are signed
with the signing secret exactly as Slack signs them; ack times are measured on the client side.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage import upgrade
from tests.channels.slack.slack_requests import (
    SIGNING_SECRET,
    SlackSender,
    click,
    direct_message,
    load,
    mention,
    slash,
    submission,
)
from tests.support.api_client import TOKEN, ApiClient
from tests.support.databases import postgres_database, sqlite_url
from tests.support.fake_slack import BOT_TOKEN, FakeSlack, SlackCall
from tests.support.model_replies import slow, tool_call
from tests.support.model_server import ScriptedModelServer
from tests.support.processes import OpsgateProcess
from tests.support.webhook_receiver import WebhookReceiver

CHANNEL = "C0OPS0001"
REQUESTER, APPROVER, OTHER_APPROVER, STRANGER = "UALICE01", "UCAROL01", "UDAVE001", "UEVE0001"
ACK_BUDGET = 1.0  # seconds; Slack's limit is 3


@pytest.fixture
async def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """SQLite unless a test asks for ``postgres`` too (``indirect`` parametrization); migrated."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield sqlite_url(tmp_path / "opsgate.db")
        return
    async with postgres_database() as url:
        await upgrade(url)
        yield url


both_databases = pytest.mark.parametrize("server_db", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
async def opsgate(
    slack: FakeSlack, model_server: ScriptedModelServer, webhook: WebhookReceiver, tmp_path: Path, server_db: str,
) -> AsyncIterator[OpsgateProcess]:
    """`opsgate serve` with the Slack channel against the fake Web API, the scripted model and the webhook."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    process = OpsgateProcess({
        "DATABASE_URL": server_db,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "OPENAI_BASE_URL": model_server.base_url,
        "OPENAI_API_KEY": "test-key",
        "OPSGATE_APPROVERS": f"{APPROVER},{OTHER_APPROVER}",
        "OPSGATE_API_TOKEN": TOKEN,
        "OPSGATE_DEPLOY_WEBHOOK_URL": webhook.url,
        "OPSGATE_WEBHOOK_SECRET": "whsecret",
        "OPSGATE_POLL_INTERVAL": "0.05",
        "OPSGATE_MODEL_RETRIES": "1",
    }, cwd=workdir)
    await process.start()
    yield process
    await process.kill()
    print(process.log_tail(80))  # shown by pytest when the test failed


@pytest.fixture
async def sender(opsgate: OpsgateProcess) -> AsyncIterator[SlackSender]:
    client = SlackSender(opsgate.url)
    yield client
    await client.aclose()


@pytest.fixture
async def api(opsgate: OpsgateProcess) -> AsyncIterator[ApiClient]:
    client = ApiClient(opsgate.url)
    yield client
    await client.aclose()


def deploy_call(environment: str = "production") -> Any:
    return tool_call("deploy", reason="hotfix for login", service="api", version="1.4.2", environment=environment)


async def timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await request
    return response, time.perf_counter() - started


def is_card(call: SlackCall) -> bool:
    return any(b.get("type") == "actions" for b in call.args.get("blocks") or [])


def button_value(card: SlackCall, action_id: str) -> str:
    for block in card.args["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button on the card")


def card_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


async def one_thread(api: ApiClient) -> dict[str, Any]:
    response = await api.http.get("/threads")
    assert response.status_code == 200, response.text
    threads = response.json()
    assert len(threads) == 1, threads
    return await api.thread(threads[0]["id"])


async def card_after_mention(
    sender: SlackSender, slack: FakeSlack, text: str = "please ship api 1.4.2 to production",
    ts: str = "1732270000.000100",
) -> SlackCall:
    response, seconds = await timed(sender.event(mention(text, user=REQUESTER, ts=ts, event_id=f"Ev{ts}")))
    assert response.status_code == 200, response.text
    assert seconds < ACK_BUDGET, f"ack took {seconds:.3f}s"
    [card] = await slack.wait_for("chat.postMessage", is_card)
    return card


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
    assert initial == {"arg_service": "api", "arg_version": "1.4.2", "arg_environment": "production"}
    values: dict[str, dict[str, str | None]] = {
        "arg_service": {"value": "api"}, "arg_version": {"value": "1.4.3 beta"},
        "arg_environment": {"value": "production"},
    }
    refused = await sender.interaction(submission("opsgate_edit", view["private_metadata"], values, user=APPROVER))
    assert refused.json()["response_action"] == "errors" and list(refused.json()["errors"]) == ["arg_version"]
    values["arg_version"] = {"value": "1.4.3"}
    accepted = await sender.interaction(submission("opsgate_edit", view["private_metadata"], values, user=APPROVER))
    assert accepted.status_code == 200 and accepted.text == ""
    [update] = await slack.wait_for("chat.update")
    assert "*version*: 1.4.2 → 1.4.3" in card_text(update.args["blocks"])
    await slack.wait_for("chat.postMessage", lambda c: c.args.get("text") == "api 1.4.3 is live")
    assert [c.json["arguments"]["version"] for c in webhook.accepted] == ["1.4.3"]


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
    threads = (await api.http.get("/threads")).json()
    assert len(threads) == 3  # stored before the ack
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
    """/opsgate deploy ... -> !deploy ...: answered privately, then a root post and the thread under it."""
    model_server.script(tool_call("done_for_now", message="api 1.4.2 is on staging"))
    response, seconds = await timed(sender.command(slash("deploy service=api version=1.4.2 environment=staging")))
    assert response.status_code == 200 and seconds < ACK_BUDGET
    assert "!deploy service=api version=1.4.2 environment=staging" in response.text
    root, result, done = await slack.wait_for("chat.postMessage", count=3)
    assert root.args["channel"] == CHANNEL and not root.args.get("thread_ts")
    assert root.args["text"] == f"<@{REQUESTER}> asked: `!deploy service=api version=1.4.2 environment=staging`"
    root_ts = next(ts for (ch, ts), m in slack.messages.items() if m["text"] == root.args["text"])
    assert result.args["thread_ts"] == done.args["thread_ts"] == root_ts
    assert result.args["text"].startswith(":white_check_mark: `deploy`")
    assert done.args["text"] == "api 1.4.2 is on staging"
    assert len(webhook.accepted) == 1
    assert webhook.accepted[0].json["arguments"]["environment"] == "staging"
