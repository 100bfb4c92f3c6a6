"""The incident agent end to end: Alertmanager's webhook starts one thread per alert group, the first model request
already holds the pre-fetched context, and a rollback it proposes is approved and executed exactly once."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agents.deploy.ledger import LedgerEntry
from bot.config import load_settings
from bot.events import Via
from bot.wiring import prepare_database
from storage import upgrade
from tests.support.app_server import serving
from tests.support.deploy_ledger import add_to_ledger, deploy_ledger
from tests.support.model_server import ScriptedModelServer, tool_call
from tests.support.servers import BackgroundServer
from tests.support.threads import settled

TOKEN = "hook-token-123"
GROUP_KEY = '{}/{severity="critical"}:{alertname="HighErrorRate", service="api"}'
FIRING: dict[str, Any] = {  # as Alertmanager 0.27 posts it
    "receiver": "opsgate", "status": "firing",
    "alerts": [{
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "api", "severity": "critical", "env": "production",
                   "instance": "api-1:8080"},
        "annotations": {"summary": "api answers 5xx to 7% of requests", "runbook_url": "https://runbooks/x"},
        "startsAt": "2026-11-30T09:00:00.000Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=job%3Aerrors", "fingerprint": "7f3c1e0a9b2d4c55",
    }],
    "groupLabels": {"alertname": "HighErrorRate", "service": "api"},
    "commonLabels": {"alertname": "HighErrorRate", "service": "api", "severity": "critical", "env": "production",
                     "instance": "api-1:8080"},
    "commonAnnotations": {"summary": "api answers 5xx to 7% of requests", "runbook_url": "https://runbooks/x"},
    "externalURL": "http://alertmanager:9093", "version": "4", "groupKey": GROUP_KEY, "truncatedAlerts": 0,
}


def resolved() -> dict[str, Any]:
    body = copy.deepcopy(FIRING)
    body["status"] = "resolved"
    body["alerts"][0].update(status="resolved", endsAt="2026-11-30T09:20:00.000Z")
    return body


class FakePrometheus:
    """GET /api/v1/query answering a vector; records the queries."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        app = Starlette(routes=[Route("/api/v1/query", self._query, methods=["GET", "POST"])])
        self.server = BackgroundServer(app, name="fake-prometheus")

    async def _query(self, request: Request) -> JSONResponse:
        self.queries.append(request.query_params.get("query", ""))
        return JSONResponse({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"service": "api", "code": "500"}, "value": [time.time(), "0.071"]}]}})


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    """A started fake Prometheus."""
    fake = FakePrometheus()
    fake.server.start()
    yield fake
    fake.server.stop()


async def test_an_alert_becomes_one_incident_thread_with_context_and_one_approved_rollback(
    sqlite_database_url: str, model_server: ScriptedModelServer, prometheus: FakePrometheus, tmp_path: Path
) -> None:
    """Firing starts the thread (repeats change nothing), the model's first request holds the alert, the deploys
    and the runbook; the rollback is approved and runs once; resolved appends to the same thread."""
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "high-error-rate.md").write_text("# HighErrorRate\nCheck the last deploy first; roll it back.\n")
    settings = load_settings({
        "DATABASE_URL": sqlite_database_url, "OPSGATE_POLL_INTERVAL": "0.05", "OPSGATE_MODEL_RETRIES": "1",
        "OPENAI_BASE_URL": model_server.base_url, "OPSGATE_HOOK_TOKEN": TOKEN,
        "OPSGATE_APPROVERS_DEPLOYERS": "alice@example.com",
        "OPSGATE_INCIDENT_PROMETHEUS_URL": prometheus.server.url, "OPSGATE_INCIDENT_RUNBOOKS": str(runbooks),
    })
    await prepare_database(settings)
    model_server.script(
        tool_call("query_prometheus", query='sum(rate(http_requests_total{service="api",code=~"5.."}[5m]))'),
        tool_call("rollback", service="api", environment="production", reason="errors began with 1.4.2"),
        tool_call("done_for_now", message="Rolled api back to 1.4.1; watching the error rate."),
        tool_call("resolve_incident", resolution="1.4.2 raised 5xx; rolled back to 1.4.1."),
        tool_call("done_for_now", message="Resolved."),
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with serving(settings) as (url, runtime), httpx.AsyncClient(base_url=url) as http:
        for version in ("1.4.1", "1.4.2"):
            await add_to_ledger(runtime.store, LedgerEntry(
                idempotency_key=f"seed:{version}", action="deploy", service="api", environment="production",
                version=version, approved_by="carol@example.com"))
        first = (await http.post("/hooks/alertmanager", json=FIRING, headers=auth)).json()
        repeat = (await http.post("/hooks/alertmanager", json=FIRING, headers=auth)).json()
        assert first["outcome"] == "started" and repeat == {"thread_id": first["thread_id"], "outcome": "duplicate"}
        thread_id = first["thread_id"]

        waiting = await settled(runtime, thread_id, "waiting_for_approval")
        assert waiting.agent == "incident" and waiting.pending is not None and waiting.pending.action == "rollback"
        context = model_server.requests[0].messages[-1]["content"]
        for known in ("HighErrorRate", "severity=critical", "api answers 5xx to 7% of requests",
                      "deploy api 1.4.2 production", "deploy api 1.4.1 production", "Check the last deploy first"):
            assert known in context, known
        assert prometheus.queries == ['sum(rate(http_requests_total{service="api",code=~"5.."}[5m]))']
        assert '{code="500", service="api"} 0.071' in model_server.requests[1].messages[-1]["content"]

        await runtime.service.decide(thread_id, waiting.pending.approval_id, approved=True,
                                     user="alice@example.com", via=Via(channel="api"))
        done = await settled(runtime, thread_id, "done")
        closing = (await http.post("/hooks/alertmanager", json=resolved(), headers=auth)).json()
        assert closing == {"thread_id": thread_id, "outcome": "continued"}
        finished = await settled(runtime, thread_id, "done", timeout=15)
        while len([e for e in finished.events if e.type == "done"]) < 2:
            finished = await settled(runtime, thread_id, "done")
        ledger = await deploy_ledger(runtime.store, "api")

    rollbacks = [e for e in ledger if e.action == "rollback"]
    assert [(e.version, e.approved_by) for e in rollbacks] == [("1.4.1", "alice@example.com")]
    assert [e.type for e in done.events].count("execution_started") == 2  # the query and the rollback, once each
    results = {e.name: e for e in finished.events if e.type == "action_result"}  # type: ignore[union-attr]
    assert results["resolve_incident"].ok  # type: ignore[union-attr]
    assert "[RESOLVED:1] HighErrorRate" in model_server.requests[3].messages[-1]["content"]


async def test_hooks_refuse_strangers_big_bodies_and_what_is_not_alertmanager(sqlite_database_url: str) -> None:
    """No token: 401; a wrong one: 401; over OPSGATE_HOOK_MAX_BYTES: 413; not version 4: 422; nothing stored."""
    settings = load_settings({"DATABASE_URL": sqlite_database_url, "OPSGATE_HOOK_TOKEN": TOKEN,
                              "OPSGATE_HOOK_MAX_BYTES": "2048"})
    await prepare_database(settings)
    async with serving(settings) as (url, runtime), httpx.AsyncClient(base_url=url) as http:
        assert (await http.post("/hooks/alertmanager", json=FIRING)).status_code == 401
        wrong = await http.post("/hooks/alertmanager", json=FIRING, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        big = {**FIRING, "commonAnnotations": {"description": "x" * 5000}}
        too_big = await http.post("/hooks/alertmanager", json=big, headers=auth)
        assert too_big.status_code == 413 and "OPSGATE_HOOK_MAX_BYTES" in too_big.json()["detail"]
        old = await http.post("/hooks/alertmanager", json={**FIRING, "version": "3"}, headers=auth)
        assert old.status_code == 422 and "version" in old.json()["detail"]
        unknown = await http.post("/hooks/nobody", json={"message": "hi"}, headers=auth)
        assert unknown.status_code == 404
        assert await runtime.store.list_threads() == []


async def test_the_generic_hook_starts_and_continues_a_group_and_honours_idempotency_keys(
    sqlite_database_url: str,
) -> None:
    """POST /hooks/{agent}: a message starts a thread for that agent; the same group continues it; a repeated
    Idempotency-Key is a duplicate."""
    settings = load_settings({"DATABASE_URL": sqlite_database_url, "OPSGATE_HOOK_TOKEN": TOKEN,
                              "OPSGATE_POLL_INTERVAL": "0.05"})
    await prepare_database(settings)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with serving(settings) as (url, runtime), httpx.AsyncClient(base_url=url) as http:
        one = await http.post("/hooks/deploy", json={"message": "!list_deployments", "group": "nightly"},
                              headers={**auth, "Idempotency-Key": "run-1"})
        again = await http.post("/hooks/deploy", json={"message": "!list_deployments", "group": "nightly"},
                                headers={**auth, "Idempotency-Key": "run-1"})
        first = await settled(runtime, one.json()["thread_id"], "done")
        two = await http.post("/hooks/deploy", json={"message": "!list_deployments", "group": "nightly",
                                                     "build": 42}, headers={**auth, "Idempotency-Key": "run-2"})
        assert one.status_code == 202 and one.json()["outcome"] == "started"
        assert again.json() == {"thread_id": first.id, "outcome": "duplicate"}
        assert two.json() == {"thread_id": first.id, "outcome": "continued"}
        thread = await runtime.service.get_thread(first.id)
    assert thread.agent == "deploy" and thread.requester == "hook:deploy"
    assert [e.type for e in thread.events].count("user_message") == 2


async def test_concurrent_notifications_of_a_new_group_share_one_thread(database_url: str) -> None:
    """Two notifications of the same new group arriving together (Alertmanager HA pair, a grown group) make one
    thread on SQLite and PostgreSQL: one starts it, the other is appended."""
    settings = load_settings({"DATABASE_URL": database_url, "OPSGATE_HOOK_TOKEN": TOKEN})
    await upgrade(database_url)
    grown = copy.deepcopy(FIRING)
    second = copy.deepcopy(FIRING["alerts"][0])
    second["labels"]["instance"], second["fingerprint"] = "api-2:8080", "0d1e2f3a4b5c6d7e"
    grown["alerts"].append(second)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with serving(settings) as (url, runtime), httpx.AsyncClient(base_url=url) as http:
        answers = await asyncio.gather(*(http.post("/hooks/alertmanager", json=body, headers=auth)
                                         for body in (FIRING, grown)))
        threads = await runtime.store.list_threads()
    outcomes = sorted(a.json()["outcome"] for a in answers)
    assert outcomes == ["continued", "started"] and len(threads) == 1
    assert {a.json()["thread_id"] for a in answers} == {threads[0].id}
