"""Shared parts of the end-to-end Slack tests: the `opsgate serve` fixtures and small helpers."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage import upgrade
from tests.channels.slack.slack_requests import SIGNING_SECRET, SlackSender, mention
from tests.support.api_client import TOKEN, ApiClient
from tests.support.databases import postgres_database, sqlite_url
from tests.support.fake_slack import BOT_TOKEN, FakeSlack, SlackCall
from tests.support.model_replies import tool_call
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
