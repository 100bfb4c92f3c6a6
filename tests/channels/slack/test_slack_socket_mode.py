"""Socket Mode end to end: `opsgate serve` with SLACK_APP_TOKEN and no signing secret opens the socket itself."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from storage import store_for
from tests.channels.slack.slack_requests import click, mention
from tests.support.api_client import TOKEN
from tests.support.databases import sqlite_url
from tests.support.fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack, FakeSocketMode
from tests.support.model_replies import tool_call
from tests.support.model_server import ScriptedModelServer
from tests.support.processes import OpsgateProcess
from tests.support.webhook_receiver import WebhookReceiver

CHANNEL, ROOT = "C0OPS0001", "1732270000.000100"


@pytest.fixture
def socket(slack: FakeSlack) -> Iterator[FakeSocketMode]:
    with FakeSocketMode() as fake:
        slack.socket_url = fake.url
        yield fake


@pytest.fixture
async def opsgate(
    slack: FakeSlack, socket: FakeSocketMode, model_server: ScriptedModelServer, webhook: WebhookReceiver,
    tmp_path: Path,
) -> AsyncIterator[OpsgateProcess]:
    """Socket Mode only: bot token + app-level token, no SLACK_SIGNING_SECRET."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    process = OpsgateProcess({
        "DATABASE_URL": sqlite_url(tmp_path / "opsgate.db"),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "OPENAI_BASE_URL": model_server.base_url,
        "OPENAI_API_KEY": "test-key",
        "OPSGATE_APPROVERS": "UCAROL01",
        "OPSGATE_API_TOKEN": TOKEN,
        "OPSGATE_DEPLOY_WEBHOOK_URL": webhook.url,
        "OPSGATE_WEBHOOK_SECRET": "whsecret",
        "OPSGATE_POLL_INTERVAL": "0.05",
    }, cwd=workdir)
    await process.start()
    yield process
    await process.kill()
    print(process.log_tail(60))


async def test_socket_mode_mention_and_approval(
    opsgate: OpsgateProcess, socket: FakeSocketMode, slack: FakeSlack, model_server: ScriptedModelServer,
    webhook: WebhookReceiver,
) -> None:
    """Over the socket: the mention is acked after it is stored, the card is posted, a click approves it."""
    model_server.script(
        tool_call("deploy", reason="hotfix", service="api", version="1.4.2", environment="production"),
        tool_call("done_for_now", message="api 1.4.2 is live"),
    )
    async with httpx.AsyncClient(base_url=opsgate.url) as http:
        assert (await http.post("/slack/events", json={"type": "url_verification"})).status_code == 404

    envelope = mention("ship api 1.4.2 to production", ts=ROOT, event_id="EvSocket1")
    ack, seconds = await socket.push("events_api", envelope)
    assert set(ack) == {"envelope_id"} and seconds < 1.0
    [card] = await slack.wait_for("chat.postMessage", lambda c: bool(c.args.get("blocks")))
    assert card.args["thread_ts"] == ROOT
    [opened] = [c for c in slack.calls if c.method == "apps.connections.open"]
    assert opened.headers["authorization"] == f"Bearer {APP_TOKEN}"

    value = next(e["value"] for b in card.args["blocks"] for e in b.get("elements", [])
                 if e.get("action_id") == "opsgate_approve")
    card_ts = next(ts for (_, ts), m in slack.messages.items() if m.get("blocks") == card.args["blocks"])
    ack, seconds = await socket.push("interactive", click(
        "opsgate_approve", value, user="UCAROL01", channel=CHANNEL, message_ts=card_ts, thread_ts=ROOT))
    assert "envelope_id" in ack and seconds < 1.0
    [update] = await slack.wait_for("chat.update")
    assert "Approved* by <@UCAROL01>" in str(update.args["blocks"])
    await slack.wait_for("chat.postMessage", lambda c: c.args.get("text") == "api 1.4.2 is live")
    assert len(webhook.accepted) == 1


async def test_socket_mode_poison_event_is_quarantined_on_the_last_delivery(
    opsgate: OpsgateProcess, socket: FakeSocketMode, tmp_path: Path,
) -> None:
    """A failing store over the socket: no ack (Slack re-delivers) until its last delivery, then quarantined."""
    database = tmp_path / "opsgate.db"
    with sqlite3.connect(database) as db:  # a real write failure: the database refuses new threads
        db.execute("CREATE TRIGGER opsgate_test_fail BEFORE INSERT ON threads "
                   "BEGIN SELECT RAISE(ABORT, 'disk on fire (test)'); END")
    envelope = mention("ship api", ts=ROOT, event_id="EvSocketPoison")
    for retry in (0, 1, 2):
        with pytest.raises(TimeoutError):
            await socket.push("events_api", envelope, retry_attempt=retry, timeout=2.0)
    ack, _ = await socket.push("events_api", envelope, retry_attempt=3)
    assert set(ack) == {"envelope_id"}
    store = store_for(sqlite_url(database))
    try:
        [item] = await store.list_quarantine()
    finally:
        await store.close()
    assert (item.channel, item.key, item.attempts) == ("slack", "EvSocketPoison", 4)
