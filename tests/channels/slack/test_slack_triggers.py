"""A thread started by a hook lives in OPSGATE_TRIGGER_SLACK_CHANNEL: its root and replies are posted there."""

from __future__ import annotations

import httpx

from bot.config import load_settings
from bot.wiring import prepare_database
from tests.channels.slack.slack_requests import SIGNING_SECRET
from tests.support.app_server import serving
from tests.support.fake_slack import BOT_TOKEN, FakeSlack

ALERTS = "C0ALERTS1"


async def test_a_hook_thread_is_posted_to_the_trigger_channel_and_answered_in_its_thread(
    sqlite_database_url: str, slack: FakeSlack
) -> None:
    """The hook's message becomes a root post in the channel; the agent's reply goes into that Slack thread."""
    settings = load_settings({
        "DATABASE_URL": sqlite_database_url, "OPSGATE_POLL_INTERVAL": "0.05", "OPSGATE_HOOK_TOKEN": "t0ken",
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack.api_url,
        "OPSGATE_TRIGGER_SLACK_CHANNEL": ALERTS,
    })
    await prepare_database(settings)
    async with serving(settings, channels=True) as (url, _), httpx.AsyncClient(base_url=url) as http:
        answer = await http.post("/hooks/deploy", json={"message": "!list_deployments"},
                                 headers={"Authorization": "Bearer t0ken"})
        assert answer.status_code == 202
        posts = await slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == ALERTS, count=2)
        root, reply = posts[:2]
    assert "!list_deployments" in root.args["text"] and "hook:deploy" in root.args["text"]
    assert root.args.get("thread_ts") in (None, "")
    assert reply.args["thread_ts"] and "no deployments recorded" in reply.args["text"]
