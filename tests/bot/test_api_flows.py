"""End-to-end approval flows through the real HTTP API of an `opsgate serve` process (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.api_client import TOKEN, ApiClient, run_cli
from tests.support.model_replies import tool_call
from tests.support.model_server import ScriptedModelServer
from tests.support.processes import OpsgateProcess
from tests.support.webhook_receiver import WebhookReceiver

APPROVER = "alice@example.com"
REQUESTER = "bob@example.com"

ServerFactory = Callable[..., Any]


@pytest.fixture
async def server_env(
    database_url: str, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> dict[str, str]:
    """Environment for a server on this test's database, the scripted model and the webhook receiver."""
    env = {
        "DATABASE_URL": database_url,
        "OPENAI_BASE_URL": model_server.base_url,
        "OPENAI_API_KEY": "test-key",
        "OPSGATE_API_TOKEN": TOKEN,
        "OPSGATE_API_TRUSTED_RELAY": "true",  # the flows assert requester and approver with the shared token
        "OPSGATE_APPROVERS": f"{APPROVER},carol@example.com",
        "OPSGATE_DEPLOY_WEBHOOK_URL": webhook.url,
        "OPSGATE_WEBHOOK_SECRET": "whsecret",
        "OPSGATE_POLL_INTERVAL": "0.05",
        "OPSGATE_MODEL_RETRIES": "1",
    }
    if database_url.startswith("postgresql"):
        code, output = await run_cli("db", "upgrade", env={"DATABASE_URL": database_url})
        assert code == 0, output
    return env


@pytest.fixture
async def server(server_env: dict[str, str], tmp_workdir: Path) -> AsyncIterator[OpsgateProcess]:
    process = OpsgateProcess(server_env, cwd=tmp_workdir)
    await process.start()
    yield process
    await process.kill()


@pytest.fixture
async def api(server: OpsgateProcess) -> AsyncIterator[ApiClient]:
    client = ApiClient(server.url)
    yield client
    await client.aclose()


def deploy_call(environment: str = "production", version: str = "1.4.2") -> Any:
    return tool_call("deploy", reason="requested in chat", service="api", version=version, environment=environment)


async def test_staging_deploy_runs_without_approval(
    api: ApiClient, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """A staging deploy needs no approval: it executes at once and the thread finishes."""
    model_server.script(deploy_call("staging"), tool_call("done_for_now", message="deployed to staging"))
    thread_id = await api.start("deploy api 1.4.2 to staging", user=REQUESTER)
    thread = await api.wait(thread_id, "done")
    types = [e["type"] for e in thread["events"]]
    assert "approval_requested" not in types
    assert types.count("execution_started") == 1
    assert len(webhook.accepted) == 1
    assert webhook.accepted[0].json["arguments"] == {"service": "api", "version": "1.4.2", "environment": "staging"}


async def test_production_deploy_pauses_then_runs_once_after_approval(
    api: ApiClient, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """Production pauses for approval; after approval the webhook is called exactly once, signed."""
    model_server.script(deploy_call(), tool_call("done_for_now", message="api 1.4.2 is live"))
    thread_id = await api.start("please ship api 1.4.2 to prod", user=REQUESTER)
    thread = await api.wait(thread_id, "waiting_for_approval")
    assert thread["pending"]["action"] == "deploy"
    assert thread["pending"]["arguments"]["environment"] == "production"
    assert thread["pending"]["reason"] == "requested in chat"
    assert webhook.calls == []

    response = await api.approve(thread, APPROVER)
    assert response.status_code == 202, response.text
    thread = await api.wait(thread_id, "done")
    assert len(webhook.calls) == 1
    call = webhook.calls[0]
    assert call.signature_valid
    assert call.json["approved_by"] == APPROVER
    assert call.json["thread_id"] == thread_id
    assert call.json["idempotency_key"] == f"{thread_id}:{thread['events'][2]['action_id']}"
    assert thread["events"][-1] == {**thread["events"][-1], "type": "done", "message": "api 1.4.2 is live"}


async def test_rejection_comment_reaches_the_model_and_nothing_runs(
    api: ApiClient, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """A rejection's comment is in the next model request; the action never executes."""
    model_server.script(deploy_call(), tool_call("done_for_now", message="ok, not deploying"))
    thread_id = await api.start("deploy api 1.4.2 to production", user=REQUESTER)
    thread = await api.wait(thread_id, "waiting_for_approval")
    response = await api.reject(thread, APPROVER, "code freeze until Monday")
    assert response.status_code == 202, response.text
    await api.wait(thread_id, "done")
    assert "code freeze until Monday" in model_server.last_user_content()
    assert webhook.calls == []


async def test_approval_with_edited_version_sends_the_edit(
    api: ApiClient, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """An approver edits the version; the webhook receives the edited arguments and the change is recorded."""
    model_server.script(deploy_call(), tool_call("done_for_now", message="done"))
    thread_id = await api.start("deploy api 1.4.2 to production", user=REQUESTER)
    thread = await api.wait(thread_id, "waiting_for_approval")
    response = await api.approve(thread, APPROVER, arguments={"version": "1.4.3"})
    assert response.status_code == 202, response.text
    thread = await api.wait(thread_id, "done")
    assert webhook.calls[0].json["arguments"]["version"] == "1.4.3"
    decided = next(e for e in thread["events"] if e["type"] == "approval_decided")
    assert decided["changes"] == [{"field": "version", "old": "1.4.2", "new": "1.4.3"}]


async def test_invalid_edit_is_refused_and_changes_nothing(
    api: ApiClient, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """Edited arguments that break the schema get 422 and the approval stays pending."""
    model_server.script(deploy_call())
    thread_id = await api.start("deploy api 1.4.2 to production", user=REQUESTER)
    thread = await api.wait(thread_id, "waiting_for_approval")
    response = await api.approve(thread, APPROVER, arguments={"environment": "moon"})
    assert response.status_code == 422
    assert "environment" in response.json()["detail"]
    response = await api.approve(thread, APPROVER, arguments={"colour": "red"})
    assert response.status_code == 422
    assert (await api.thread(thread_id))["status"] == "waiting_for_approval"
    assert webhook.calls == []


async def test_second_decision_gets_409_and_one_execution(
    api: ApiClient, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """The first decision wins; a second gets 409 naming who decided; the webhook still ran once."""
    model_server.script(deploy_call(), tool_call("done_for_now", message="done"))
    thread_id = await api.start("deploy api 1.4.2 to production", user=REQUESTER)
    thread = await api.wait(thread_id, "waiting_for_approval")
    assert (await api.approve(thread, APPROVER)).status_code == 202
    second = await api.approve(thread, "carol@example.com")
    assert second.status_code == 409
    assert APPROVER in second.json()["detail"]
    await api.wait(thread_id, "done")
    assert len(webhook.calls) == 1


async def test_non_approver_and_requester_are_refused(
    api: ApiClient, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """403 for someone not in OPSGATE_APPROVERS and for the requester (four-eyes on production)."""
    model_server.script(deploy_call())
    thread_id = await api.start("deploy api 1.4.2 to production", user=APPROVER)
    thread = await api.wait(thread_id, "waiting_for_approval")
    outsider = await api.approve(thread, "mallory@example.com")
    assert outsider.status_code == 403
    own = await api.approve(thread, APPROVER)
    assert own.status_code == 403
    assert "four-eyes" in own.json()["detail"]
    thread = await api.thread(thread_id)
    assert thread["status"] == "waiting_for_approval"
    assert [e["by"] for e in thread["events"] if e["type"] == "decision_refused"] == [
        "mallory@example.com", APPROVER]
    assert webhook.calls == []


async def test_server_killed_while_waiting_executes_once_after_restart(
    server: OpsgateProcess, api: ApiClient, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """SIGKILL while waiting for approval, restart, approve: the action runs exactly once."""
    model_server.script(deploy_call(), tool_call("done_for_now", message="done"))
    thread_id = await api.start("deploy api 1.4.2 to production", user=REQUESTER)
    thread = await api.wait(thread_id, "waiting_for_approval")
    assert await server.kill() == -9
    await server.start()
    thread = await api.wait(thread_id, "waiting_for_approval")
    assert (await api.approve(thread, APPROVER)).status_code == 202
    await api.wait(thread_id, "done")
    assert len(webhook.calls) == 1


async def test_question_then_answer_continues_the_thread(
    api: ApiClient, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """request_more_information pauses; a message answers it and the agent goes on."""
    model_server.script(
        tool_call("request_more_information", message="Which version?"),
        deploy_call("staging", "latest"),  # the second look at the question: no version given, so it stands
        deploy_call("staging", "2.0.0"),
        tool_call("done_for_now", message="deployed 2.0.0 to staging"),
    )
    thread_id = await api.start("deploy api to staging", user=REQUESTER)
    thread = await api.wait(thread_id, "waiting_for_human")
    assert thread["events"][-1]["message"] == "Which version?"
    response = await api.respond(thread_id, {"type": "message", "text": "2.0.0", "user": REQUESTER})
    assert response.status_code == 202
    thread = await api.wait(thread_id, "done")
    assert any(e["type"] == "human_input_received" for e in thread["events"])
    assert webhook.calls[0].json["arguments"]["version"] == "2.0.0"


async def test_the_requester_withdraws_a_pending_request_over_the_api(
    api: ApiClient, model_server: ScriptedModelServer, webhook: WebhookReceiver
) -> None:
    """POST /threads/{id}/cancel: only the requester may withdraw; the thread ends `cancelled`, nothing runs, and
    the approver's later click is refused (the request is closed)."""
    model_server.script(deploy_call())
    thread_id = await api.start("deploy api 1.4.2 to production", user=REQUESTER)
    waiting = await api.wait(thread_id, "waiting_for_approval")

    refused = await api.http.post(f"/threads/{thread_id}/cancel", json={"user": APPROVER})
    assert refused.status_code == 403, refused.text
    assert (await api.thread(thread_id))["status"] == "waiting_for_approval"

    response = await api.http.post(f"/threads/{thread_id}/cancel", json={"user": REQUESTER, "reason": "wrong version"})
    assert response.status_code == 202, response.text
    assert (response.json()["status"], response.json()["outcome"]) == ("done", "cancelled")
    thread = await api.thread(thread_id)
    assert (thread["status"], thread["outcome"], thread["pending"]) == ("done", "cancelled", None)
    [decided] = [e for e in thread["events"] if e["type"] == "approval_decided"]
    assert (decided["approved"], decided["closed_by"], decided["by"]) == (False, "withdrawal", REQUESTER)

    late = await api.approve(waiting, APPROVER)
    assert late.status_code == 409, late.text
    assert webhook.calls == []
    assert (await api.http.post(f"/threads/{thread_id}/cancel", json={"user": REQUESTER})).status_code == 409
