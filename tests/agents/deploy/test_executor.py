"""The deploy executor: signed webhook calls with retries, the local ledger, idempotency, and rollback."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from agents.deploy.actions import Deploy, ListDeployments, Rollback
from agents.deploy.executor import deploy, list_deployments, rollback
from agents.deploy.ledger import LedgerEntry
from bot.agent import ToolContext
from bot.config import Settings, load_settings
from bot.errors import ExecutionFailed
from bot.events import ActionResult, Via
from bot.webhooks import signature
from storage import SqlStore, upgrade
from tests.agents.deploy.threads import crashed_thread, stored_crashed_thread, tool_context
from tests.conftest import WEBHOOK_SECRET
from tests.support.deploy_ledger import add_to_ledger, deploy_ledger
from tests.support.model_server import ScriptedModelServer, tool_call
from tests.support.threads import running, settled
from tests.support.webhook_receiver import WebhookReceiver

PROD = Deploy(service="api", version="1.4.2", environment="production")


def webhook_settings(url: str, secret: str = WEBHOOK_SECRET) -> Settings:
    return load_settings({"OPSGATE_DEPLOY_WEBHOOK_URL": url, "OPSGATE_WEBHOOK_SECRET": secret})


def context(settings: Settings, ledger: SqlStore, http: httpx.AsyncClient, key: str = "t1:a1",
            approved_by: str | None = "alice@example.com") -> ToolContext:
    return tool_context(settings, ledger, http, key=key, approved_by=approved_by)


# --- the webhook ------------------------------------------------------------------------------------------


async def test_webhook_gets_the_documented_body_signed_with_hmac(
    webhook: WebhookReceiver, ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """One POST with action, arguments, ids, approver and key; X-Opsgate-Signature is sha256=HMAC of the body."""
    reply = await deploy(PROD, context(webhook_settings(webhook.url), ledger, http))
    assert len(webhook.calls) == 1
    call = webhook.calls[0]
    assert call.json == {
        "action": "deploy",
        "arguments": {"service": "api", "version": "1.4.2", "environment": "production"},
        "thread_id": "t1", "action_id": "a1", "approved_by": "alice@example.com", "idempotency_key": "t1:a1",
    }
    assert call.headers["x-opsgate-signature"] == signature(call.body, WEBHOOK_SECRET)
    assert call.headers["x-opsgate-signature"].startswith("sha256=") and call.signature_valid
    assert call.headers["idempotency-key"] == "t1:a1"
    assert call.headers["content-type"] == "application/json"
    assert "sent to the webhook" in reply and '"ok":true' in reply.replace(" ", "")
    assert [(e.idempotency_key, e.version) for e in await deploy_ledger(ledger)] == [("t1:a1", "1.4.2")]


async def test_server_errors_are_retried_until_one_call_is_accepted(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """503, 503 then 200: three identical signed calls, exactly one accepted, with growing pauses."""
    with WebhookReceiver(WEBHOOK_SECRET, fail_first=2, fail_status=503) as receiver:
        reply = await deploy(PROD, context(webhook_settings(receiver.url), ledger, http))
    assert [c.status for c in receiver.calls] == [503, 503, 200]
    assert len(receiver.accepted) == 1
    assert len({c.body for c in receiver.calls}) == 1  # the same key every time, for the receiver to de-duplicate
    gaps = [b.received_at - a.received_at for a, b in zip(receiver.calls, receiver.calls[1:], strict=False)]
    assert gaps[0] >= 0.4 and gaps[1] >= 0.9
    assert "sent to the webhook" in reply


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_client_errors_fail_at_once_without_retry(
    ledger: SqlStore, http: httpx.AsyncClient, status: int
) -> None:
    """A 4xx is final: one call, ExecutionFailed with the status, nothing recorded."""
    with WebhookReceiver(WEBHOOK_SECRET, fail_first=1, fail_status=status) as receiver:
        with pytest.raises(ExecutionFailed, match=f"HTTP {status}"):
            await deploy(PROD, context(webhook_settings(receiver.url), ledger, http))
    assert len(receiver.calls) == 1
    assert await deploy_ledger(ledger) == []


async def test_a_wrong_secret_is_refused_by_the_receiver(
    webhook: WebhookReceiver, ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """Signed with another secret, the call is rejected (401) and the deploy fails."""
    with pytest.raises(ExecutionFailed, match="HTTP 401"):
        await deploy(PROD, context(webhook_settings(webhook.url, secret="other"), ledger, http))
    assert len(webhook.rejected) == 1


# --- the local ledger -------------------------------------------------------------------------------------


async def test_without_a_webhook_the_deploy_goes_to_the_ledger_and_says_so(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """No OPSGATE_DEPLOY_WEBHOOK_URL: an entry in the ledger and a reply that nothing external was called."""
    reply = await deploy(PROD, context(load_settings({}), ledger, http))
    assert "No external system was called" in reply and "OPSGATE_DEPLOY_WEBHOOK_URL" in reply
    assert "api 1.4.2 to production" in reply
    [recorded] = await deploy_ledger(ledger)
    assert recorded.model_dump(exclude={"at"}) == {
        "idempotency_key": "t1:a1", "action": "deploy", "service": "api", "environment": "production",
        "version": "1.4.2", "thread_id": "t1", "action_id": "a1", "approved_by": "alice@example.com",
    }


async def test_the_same_key_is_recorded_once(ledger: SqlStore, http: httpx.AsyncClient) -> None:
    """Running the same execution again (same key) adds nothing and says it was not repeated."""
    ctx = context(load_settings({}), ledger, http)
    await deploy(PROD, ctx)
    again = await deploy(PROD, ctx)
    assert "already recorded; not repeated" in again
    assert len(await deploy_ledger(ledger)) == 1


async def record(ledger: SqlStore, key: str, version: str, minutes_ago: int, environment: str = "production",
                 service: str = "api", action: str = "deploy") -> None:
    await add_to_ledger(ledger, LedgerEntry(
        idempotency_key=key, action=action, service=service, environment=environment, version=version,
        at=datetime.now(UTC) - timedelta(minutes=minutes_ago)))


async def test_rollback_picks_the_previous_version_of_that_service_and_environment(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """The version before the current one in the same environment, ignoring other services and environments."""
    await record(ledger, "k1", "1.0.0", 50)
    await record(ledger, "k2", "1.1.0", 40)
    await record(ledger, "k3", "2.0.0-rc1", 30, environment="staging")
    await record(ledger, "k4", "9.9.9", 20, service="billing")
    reply = await rollback(Rollback(service="api", environment="production"),
                           context(load_settings({}), ledger, http, key="t2:rb"))
    assert "to 1.0.0" in reply and "No external system was called" in reply
    newest = (await deploy_ledger(ledger, "api"))[0]
    assert (newest.action, newest.version, newest.environment, newest.idempotency_key) == (
        "rollback", "1.0.0", "production", "t2:rb")


async def test_rollback_without_an_earlier_version_fails(ledger: SqlStore, http: httpx.AsyncClient) -> None:
    """With only one deploy there is nothing to roll back to."""
    await record(ledger, "k1", "1.0.0", 10)
    with pytest.raises(ExecutionFailed, match="no earlier deploy of api to production"):
        await rollback(Rollback(service="api", environment="production"), context(load_settings({}), ledger, http))
    assert len(await deploy_ledger(ledger)) == 1


async def test_a_second_rollback_goes_one_version_further_back(ledger: SqlStore, http: httpx.AsyncClient) -> None:
    """After rolling back 1.2.0 -> 1.1.0, the next rollback goes to 1.0.0."""
    for n, version in enumerate(["1.0.0", "1.1.0", "1.2.0"]):
        await record(ledger, f"k{n}", version, 50 - n * 10)
    action = Rollback(service="api", environment="production")
    assert "to 1.1.0" in await rollback(action, context(load_settings({}), ledger, http, key="t:rb1"))
    await asyncio.sleep(0.01)
    assert "to 1.0.0" in await rollback(action, context(load_settings({}), ledger, http, key="t:rb2"))


async def test_rollback_through_the_webhook_sends_service_and_environment(
    webhook: WebhookReceiver, ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """With a webhook the rollback is a signed call; the ledger still records which version it returns to."""
    await record(ledger, "k1", "1.0.0", 20)
    await record(ledger, "k2", "1.1.0", 10)
    await rollback(Rollback(service="api", environment="production"),
                   context(webhook_settings(webhook.url), ledger, http, key="t3:rb"))
    [call] = webhook.calls
    assert call.json["action"] == "rollback"
    assert call.json["arguments"] == {"service": "api", "environment": "production"}
    assert (await deploy_ledger(ledger, "api"))[0].version == "1.0.0"


async def test_list_deployments_reads_the_ledger_newest_first(ledger: SqlStore, http: httpx.AsyncClient) -> None:
    """One line per entry with action, service, version, environment and approver; filtered by service."""
    ctx = context(load_settings({}), ledger, http)
    assert await list_deployments(ListDeployments(service="api"), ctx) == "no deployments recorded for api"
    await record(ledger, "k1", "1.0.0", 20)
    await record(ledger, "k2", "7.0", 10, service="billing")
    lines = (await list_deployments(ListDeployments(), ctx)).splitlines()
    assert [line.split()[2:6] for line in lines] == [["deploy", "billing", "7.0", "production"],
                                                     ["deploy", "api", "1.0.0", "production"]]
    assert "no approval needed" in lines[0]
    only_api = await list_deployments(ListDeployments(service="api"), ctx)
    assert "billing" not in only_api and "1.0.0" in only_api


# --- through the engine -----------------------------------------------------------------------------------


async def test_a_refused_webhook_call_is_a_failed_result_the_model_sees(
    sqlite_database_url: str, model_server: ScriptedModelServer
) -> None:
    """A 4xx from the webhook becomes a failed ActionResult, shown to the model on its next request."""
    model_server.script(tool_call("deploy", service="api", version="1.4.2", environment="staging"),
                        tool_call("done_for_now", message="the deploy was refused"))
    with WebhookReceiver(WEBHOOK_SECRET, fail_first=1, fail_status=400) as receiver:
        async with running(sqlite_database_url, OPENAI_BASE_URL=model_server.base_url,
                           OPSGATE_DEPLOY_WEBHOOK_URL=receiver.url, OPSGATE_WEBHOOK_SECRET=WEBHOOK_SECRET) as runtime:
            started = await runtime.service.start_thread("deploy api 1.4.2 to staging", user="bob",
                                                         via=Via(channel="api"))
            thread = await settled(runtime, started.id)
    assert thread.status == "done"
    [result] = [e for e in thread.events if isinstance(e, ActionResult)]
    assert not result.ok and "ExecutionFailed" in result.result and "HTTP 400" in result.result
    assert len(receiver.calls) == 1
    seen = model_server.requests[1].messages[-1]["content"]
    assert '<deploy_result ok="false">' in seen and "HTTP 400" in seen


async def test_replayed_execution_after_a_crash_adds_no_second_ledger_entry(sqlite_database_url: str) -> None:
    """The tool ran, the process died before the result: the resumed execution reuses the key, the ledger keeps one."""
    await upgrade(sqlite_database_url)
    store = SqlStore.from_url(sqlite_database_url)
    thread, intent = crashed_thread()
    try:
        await store.create_thread(thread, "running")
        await add_to_ledger(store, LedgerEntry(idempotency_key=intent.idempotency_key, action="deploy", service="api",
                                           environment="production", version="1.4.2", thread_id=thread.id,
                                           action_id=intent.action_id, approved_by="alice@example.com"))
    finally:
        await store.close()
    async with running(sqlite_database_url) as runtime:
        resumed = await settled(runtime, thread.id)
        entries = await deploy_ledger(runtime.store)
    [result] = [e for e in resumed.events if isinstance(e, ActionResult)]
    assert result.ok and "already recorded; not repeated" in result.result
    assert [e.type for e in resumed.events].count("execution_started") == 1
    assert [e.idempotency_key for e in entries] == [intent.idempotency_key]


async def test_resumed_execution_calls_the_webhook_with_the_recorded_key(
    sqlite_database_url: str, webhook: WebhookReceiver
) -> None:
    """A crash after the intent: the restarted worker sends the same idempotency key and approver, once."""
    thread, intent = await stored_crashed_thread(sqlite_database_url)
    async with running(sqlite_database_url, OPSGATE_DEPLOY_WEBHOOK_URL=webhook.url,
                       OPSGATE_WEBHOOK_SECRET=WEBHOOK_SECRET) as runtime:
        resumed = await settled(runtime, thread.id)
    [call] = webhook.calls
    assert json.loads(call.body)["idempotency_key"] == intent.idempotency_key
    assert call.json["approved_by"] == "alice@example.com"
    assert any(isinstance(e, ActionResult) and e.ok for e in resumed.events)
