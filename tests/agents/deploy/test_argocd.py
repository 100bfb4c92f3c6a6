"""The Argo CD backend against a fake of the documented REST API: set the version, sync once, wait for health."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from agents.deploy.actions import Deploy, Rollback
from agents.deploy.argocd import KEY_ANNOTATION, KEY_INFO
from agents.deploy.executor import deploy, rollback
from bot.agent import ToolContext
from bot.config import load_settings
from bot.errors import ExecutionFailed
from bot.events import ActionResult
from storage import SqlStore
from tests.agents.deploy.threads import stored_crashed_thread, tool_context
from tests.support.deploy_ledger import deploy_ledger
from tests.support.fake_argocd import FakeArgoCD, application
from tests.support.threads import running, settled

PROD = Deploy(service="api", version="1.4.2", environment="production")
KEY = "t1:a1"
HELM = [{"name": "replicaCount", "value": "3"}, {"name": "image.tag", "value": "1.4.1"}]


def argo_context(argo: FakeArgoCD, ledger: SqlStore, http: httpx.AsyncClient, *, key: str = KEY,
                 resumed: bool = False, **env: str) -> ToolContext:
    settings = load_settings({
        "OPSGATE_DEPLOY_BACKEND": "argocd", "OPSGATE_DEPLOY_ARGOCD_URL": argo.url,
        "OPSGATE_DEPLOY_ARGOCD_TOKEN": argo.token, "OPSGATE_DEPLOY_ARGOCD_HELM_PARAMETER": "image.tag",
        "OPSGATE_DEPLOY_POLL_INTERVAL": "0.02", "OPSGATE_DEPLOY_START_TIMEOUT": "0.5",
        "OPSGATE_DEPLOY_TIMEOUT": "5", **env,
    })
    return tool_context(settings, ledger, http, key=key, resumed=resumed)


def helm_apps() -> dict[str, dict[str, Any]]:
    return {"api-production": application("api-production", helm=[dict(p) for p in HELM])}


async def test_sets_the_helm_parameter_syncs_once_and_waits_until_healthy(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """A merge patch keeps the other parameters, one sync carries the key, the result names revision and health."""
    with FakeArgoCD(helm_apps()) as argo:
        reply = await deploy(PROD, argo_context(argo, ledger, http))
    [patch] = argo.patches
    assert patch["name"] == "api-production" and patch["patchType"] == "merge"
    assert json.loads(patch["patch"]) == {
        "metadata": {"annotations": {KEY_ANNOTATION: KEY}},
        "spec": {"source": {"helm": {"parameters": [HELM[0], {"name": "image.tag", "value": "1.4.2"}]}}},
    }
    [sync] = argo.syncs
    assert {"name": KEY_INFO, "value": KEY} in sync["infos"] and sync["prune"] is False
    source = argo.apps["api-production"]["spec"]["source"]
    assert source["helm"]["parameters"][-1] == {"name": "image.tag", "value": "1.4.2"}
    assert "Healthy" in reply and "revision ab12cd34ef56" in reply
    assert f"{argo.url}/applications/api-production" in reply
    assert [(e.idempotency_key, e.version) for e in await deploy_ledger(ledger)] == [(KEY, "1.4.2")]


async def test_sets_the_kustomize_image_of_the_service(ledger: SqlStore, http: httpx.AsyncClient) -> None:
    """With OPSGATE_DEPLOY_ARGOCD_IMAGE the service's image entry is replaced, others kept."""
    apps = {"api-production": application("api-production", images=["ghcr.io/acme/api:1.4.1", "redis:7"])}
    with FakeArgoCD(apps) as argo:
        await deploy(PROD, argo_context(argo, ledger, http, OPSGATE_DEPLOY_ARGOCD_HELM_PARAMETER="",
                                        OPSGATE_DEPLOY_ARGOCD_IMAGE="ghcr.io/acme/{service}"))
    images = argo.apps["api-production"]["spec"]["source"]["kustomize"]["images"]
    assert images == ["redis:7", "ghcr.io/acme/api:1.4.2"]


@pytest.mark.parametrize(("knobs", "message"), [
    ({"phase": "Failed"}, "sync of api-production failed: one or more objects failed to apply"),
    ({"health": "Degraded"}, "Degraded: Deployment exceeded its progress deadline"),
    ({"start_after": None}, "never started within 0.5 s"),
    ({"healthy_after": 10**6}, "not healthy after 0.3 s \\(health Progressing\\)"),
])
async def test_a_sync_that_does_not_end_healthy_fails_with_the_reason(
    ledger: SqlStore, http: httpx.AsyncClient, knobs: dict[str, Any], message: str
) -> None:
    """Failed sync, degraded health, a controller that never starts it, a timeout: each a clear failure."""
    with FakeArgoCD(helm_apps(), **knobs) as argo:
        with pytest.raises(ExecutionFailed, match=message):
            await deploy(PROD, argo_context(argo, ledger, http, OPSGATE_DEPLOY_TIMEOUT="0.3"
                                            if "healthy_after" in knobs else "5"))
    assert len(argo.syncs) == 1
    assert await deploy_ledger(ledger) == []


async def test_a_busy_application_is_synced_once_the_running_operation_ends(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """"another operation is already in progress" is waited out, then the sync goes through."""
    with FakeArgoCD(helm_apps(), busy_syncs=2) as argo:
        reply = await deploy(PROD, argo_context(argo, ledger, http))
    assert len(argo.syncs) == 3 and "Healthy" in reply


async def test_a_sync_without_a_clear_answer_is_not_sent_again(ledger: SqlStore, http: httpx.AsyncClient) -> None:
    """A 502 after Argo CD accepted the sync: the key on the operation shows it arrived, so it is not repeated."""
    with FakeArgoCD(helm_apps(), sync_error=502) as argo:
        reply = await deploy(PROD, argo_context(argo, ledger, http))
    assert len(argo.syncs) == 1 and "Healthy" in reply


async def test_a_resumed_execution_waits_for_the_sync_it_already_started(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """The operation carries this key (a crash after the sync): no new patch or sync, only the wait."""
    apps = helm_apps()
    apps["api-production"]["status"]["operationState"] = {
        "operation": {"info": [{"name": KEY_INFO, "value": KEY}]}, "phase": "Succeeded", "message": "done"}
    with FakeArgoCD(apps) as argo:
        reply = await deploy(PROD, argo_context(argo, ledger, http, resumed=True))
    assert argo.patches == [] and argo.syncs == []
    assert "Healthy" in reply


@pytest.mark.parametrize(("env", "message"), [
    ({"OPSGATE_DEPLOY_ARGOCD_APP": "{service}-prod"}, 'HTTP 404 applications.argoproj.io "api-prod" not found'),
    ({"OPSGATE_DEPLOY_ARGOCD_TOKEN": "expired"}, "HTTP 401 invalid session"),
])
async def test_unknown_applications_and_bad_tokens_fail_with_argos_message(
    ledger: SqlStore, http: httpx.AsyncClient, env: dict[str, str], message: str
) -> None:
    """A 4xx is final and its message reaches the thread; nothing is changed."""
    with FakeArgoCD(helm_apps()) as argo:
        with pytest.raises(ExecutionFailed, match=message):
            await deploy(PROD, argo_context(argo, ledger, http, **env))
    assert argo.patches == [] and argo.syncs == []


async def test_rollback_sets_the_previous_version_from_the_ledger(ledger: SqlStore, http: httpx.AsyncClient) -> None:
    """After 1.0.0 then 1.1.0, a rollback sets image.tag back to 1.0.0 and syncs."""
    with FakeArgoCD(helm_apps()) as argo:
        for n, version in enumerate(["1.0.0", "1.1.0"]):
            await deploy(Deploy(service="api", version=version, environment="production"),
                         argo_context(argo, ledger, http, key=f"t{n}:a{n}"))
        reply = await rollback(Rollback(service="api", environment="production"),
                               argo_context(argo, ledger, http, key="t9:rb"))
    assert argo.apps["api-production"]["spec"]["source"]["helm"]["parameters"][-1]["value"] == "1.0.0"
    assert reply.startswith("rolled back api in production to 1.0.0.") and len(argo.syncs) == 3


async def test_rollback_without_a_recorded_earlier_version_changes_nothing(
    ledger: SqlStore, http: httpx.AsyncClient
) -> None:
    """Argo CD needs a version to go back to: with none in the ledger the rollback fails before any call."""
    with FakeArgoCD(helm_apps()) as argo:
        with pytest.raises(ExecutionFailed, match="no earlier deploy of api to production"):
            await rollback(Rollback(service="api", environment="production"), argo_context(argo, ledger, http))
    assert argo.requests == []


async def test_after_a_crash_the_worker_waits_for_the_sync_it_started(sqlite_database_url: str) -> None:
    """The intent was recorded and the sync carrying its key started, then the process died: the restarted worker
    patches and syncs nothing, waits for that operation and records the result once."""
    thread, intent = await stored_crashed_thread(sqlite_database_url)
    with FakeArgoCD(helm_apps()) as argo:
        argo.operation_running("api-production", [{"name": KEY_INFO, "value": intent.idempotency_key}])
        env = {"OPSGATE_DEPLOY_BACKEND": "argocd", "OPSGATE_DEPLOY_ARGOCD_URL": argo.url,
               "OPSGATE_DEPLOY_ARGOCD_TOKEN": argo.token, "OPSGATE_DEPLOY_ARGOCD_HELM_PARAMETER": "image.tag",
               "OPSGATE_DEPLOY_POLL_INTERVAL": "0.02", "OPSGATE_DEPLOY_START_TIMEOUT": "0.5"}
        async with running(sqlite_database_url, **env) as runtime:
            resumed = await settled(runtime, thread.id)
            entries = await deploy_ledger(runtime.store)
    [result] = [e for e in resumed.events if isinstance(e, ActionResult)]
    assert result.ok and "Healthy" in result.result
    assert argo.patches == [] and argo.syncs == []
    assert [e.idempotency_key for e in entries] == [intent.idempotency_key]
