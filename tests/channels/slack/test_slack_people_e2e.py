"""People across channels, end to end through a real `opsgate serve`: Slack users matched by the email Slack
reports (users.info on the fake Web API), four-eyes across Slack, API and the web inbox, explicit mappings,
and the audit export showing both the person and the channel identity."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from channels.slack.slack_payloads import CardRef
from tests.channels.slack.e2e_support import CHANNEL, both_databases, button_value, card_text
from tests.channels.slack.slack_requests import SIGNING_SECRET, SlackSender, click, mention
from tests.support.api_client import TOKEN, ApiClient, run_cli
from tests.support.fake_slack import BOT_TOKEN, FakeSlack
from tests.support.model_server import ScriptedModelServer
from tests.support.processes import OpsgateProcess
from tests.support.webhook_receiver import WebhookReceiver

ALICE, CAROL, EVE, DAVE = "UALICE01", "UCAROL01", "UEVE0001", "UDAVE001"
ALICE_MAIL, CAROL_MAIL = "alice@example.com", "carol@example.com"
DEPLOY = "!deploy service=api version=1.4.2 environment=production"
ROOT, CARD_TS = "1732270000.000100", "1732270010.000200"
ENV = {
    # Approvers by email alone, plus one person mapped explicitly (dave: Slack knows no email for him).
    "OPSGATE_APPROVERS": f"{ALICE_MAIL},{CAROL_MAIL},eve@example.com,dave",
    "OPSGATE_PEOPLE": f"dave={DAVE},dave@example.com",
    # The API and inbox act as whoever the test names (a relay that authenticates people itself): what is under
    # test is that every channel compares people, not how the API proves who calls (tests/bot/test_credentials_e2e).
    "OPSGATE_API_TRUSTED_RELAY": "true",
}


@pytest.fixture
async def people_opsgate(
    slack: FakeSlack, model_server: ScriptedModelServer, webhook: WebhookReceiver, tmp_path: Path, server_db: str,
) -> AsyncIterator[OpsgateProcess]:
    """`opsgate serve` whose approvers are configured by email; the fake Slack knows Alice's and Carol's."""
    slack.add_user(ALICE, email=ALICE_MAIL)
    slack.add_user(CAROL, email="Carol@Example.com")
    slack.add_user(EVE)  # a profile without an email address: only an explicit mapping could count
    workdir = tmp_path / "work"
    workdir.mkdir()
    process = OpsgateProcess({
        "DATABASE_URL": server_db, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url, "OPENAI_BASE_URL": model_server.base_url, "OPENAI_API_KEY": "test-key",
        "OPSGATE_API_TOKEN": TOKEN, "OPSGATE_DEPLOY_WEBHOOK_URL": webhook.url, "OPSGATE_WEBHOOK_SECRET": "whsecret",
        "OPSGATE_POLL_INTERVAL": "0.05", **ENV,
    }, cwd=workdir)
    await process.start()
    await slack.wait_for("auth.test")  # our workspace must be known before a Slack email is trusted
    yield process
    await process.kill()
    print(process.log_tail(80))  # shown by pytest when the test failed


@pytest.fixture
async def sender(people_opsgate: OpsgateProcess) -> AsyncIterator[SlackSender]:
    client = SlackSender(people_opsgate.url)
    yield client
    await client.aclose()


@pytest.fixture
async def api(people_opsgate: OpsgateProcess) -> AsyncIterator[ApiClient]:
    client = ApiClient(people_opsgate.url)
    yield client
    await client.aclose()


async def press(sender: SlackSender, value: str, user: str) -> None:
    response = await sender.interaction(click("opsgate_approve", value, user=user, channel=CHANNEL,
                                              message_ts=CARD_TS, thread_ts=ROOT))
    assert response.status_code == 200, response.text


async def inbox_approve(api: ApiClient, thread: dict[str, Any], user: str) -> tuple[int, str]:
    """Approve in the web inbox as ``user`` (API token + X-Opsgate-User); the status and the page."""
    response = await api.http.post(f"/t/{thread['id']}/decide", headers={"X-Opsgate-User": user},
                                   data={"decision": "approve", "approval_id": thread["pending"]["approval_id"]})
    return response.status_code, response.text


def of_type(thread: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in thread["events"] if e["type"] == kind]


@both_databases
async def test_slack_requester_cannot_approve_anywhere_and_an_email_approver_approves_from_slack(
    sender: SlackSender, slack: FakeSlack, webhook: WebhookReceiver, api: ApiClient, server_db: str,
) -> None:
    """Alice asks in Slack: as alice@example.com she is refused by API, inbox and Slack (four-eyes); Eve's
    Slack account has no email and matches nobody; Carol, configured only by email, approves from Slack."""
    response = await sender.event(mention(DEPLOY, user=ALICE, ts=ROOT, event_id="EvPeople"))
    assert response.status_code == 200
    [card] = await slack.wait_for("chat.postMessage", lambda c: "opsgate_approve" in card_text(c.args["blocks"]))
    [thread_id] = [t["id"] for t in (await api.http.get("/threads")).json()]
    thread = await api.thread(thread_id)
    [asked] = of_type(thread, "user_message")
    [request] = of_type(thread, "approval_requested")
    assert (asked["user"], asked["person"]) == (ALICE, ALICE_MAIL)
    assert (request["requester"], request["requester_person"], request["four_eyes"]) == (ALICE, ALICE_MAIL, True)

    by_api = await api.approve(thread, ALICE_MAIL)
    assert by_api.status_code == 403 and "four-eyes rule" in by_api.text
    code, page = await inbox_approve(api, thread, "Alice@Example.com")
    assert code == 403 and "four-eyes rule" in page
    shown = await api.http.get(f"/t/{thread_id}", headers={"X-Opsgate-User": ALICE_MAIL})
    assert shown.status_code == 200 and "four-eyes rule: alice@example.com" in shown.text
    value = button_value(card, "opsgate_approve")
    await press(sender, value, ALICE)
    await press(sender, value, EVE)
    notes = await slack.wait_for("chat.postEphemeral", count=2)
    assert "four-eyes rule: alice@example.com (UALICE01) requested" in notes[0].args["text"]
    assert "UEVE0001 is not one of the approvers" in notes[1].args["text"]
    assert webhook.calls == []

    await press(sender, value, CAROL)
    [update] = await slack.wait_for("chat.update")
    assert f"*Approved* by <@{CAROL}>" in card_text(update.args["blocks"])
    done = await api.wait(thread_id, "done", "waiting_for_approval", timeout=20)
    [decision] = of_type(done, "approval_decided")
    assert (decision["by"], decision["by_person"], decision["via"]["channel"]) == (CAROL, CAROL_MAIL, "slack")
    refused = [(e["by"], e["by_person"], e["via"]["channel"]) for e in of_type(done, "decision_refused")]
    assert refused == [(ALICE_MAIL, ALICE_MAIL, "api"), ("Alice@Example.com", ALICE_MAIL, "web"),
                       (ALICE, ALICE_MAIL, "slack"), (EVE, EVE, "slack")]
    assert len(webhook.accepted) == 1 and webhook.accepted[0].json["approved_by"] == CAROL

    code, out = await run_cli("audit", "export", "--format", "jsonl", env={"DATABASE_URL": server_db})
    assert code == 0, out
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    seen = {(r["record"], r["who"], r["person"], r["channel"]) for r in rows}
    assert ("approval_requested", ALICE, ALICE_MAIL, None) in seen
    assert ("approval_decided", CAROL, CAROL_MAIL, "slack") in seen
    assert ("decision_refused", ALICE, ALICE_MAIL, "slack") in seen
    assert ("execution_started", CAROL, CAROL_MAIL, None) in seen
    code, out = await run_cli("audit", "export", "--format", "csv", env={"DATABASE_URL": server_db})
    assert code == 0 and "who,person,channel" in out and f"{CAROL},{CAROL_MAIL},slack" in out


async def test_api_requester_cannot_approve_from_slack_and_an_explicit_mapping_counts_without_email(
    sender: SlackSender, slack: FakeSlack, webhook: WebhookReceiver, api: ApiClient,
) -> None:
    """Carol asks through the API as carol@example.com; her Slack click is four-eyes. Dave's users.info
    fails (user_not_found), but OPSGATE_PEOPLE maps his Slack id to dave, an approver: his click counts."""
    thread_id = await api.start(DEPLOY, user=CAROL_MAIL)
    thread = await api.wait(thread_id, "waiting_for_approval")
    value = CardRef(thread_id=thread_id, approval_id=thread["pending"]["approval_id"]).to_value()
    await press(sender, value, CAROL)
    [note] = await slack.wait_for("chat.postEphemeral")
    assert "four-eyes rule: carol@example.com (UCAROL01) requested" in note.args["text"]
    await press(sender, value, DAVE)
    done = await api.wait(thread_id, "done", timeout=20)
    [decision] = of_type(done, "approval_decided")
    assert (decision["by"], decision["by_person"]) == (DAVE, "dave")
    assert [c.args["user"] for c in slack.calls_to("users.info", ok_only=False)].count(DAVE) == 1
    assert len(webhook.accepted) == 1
