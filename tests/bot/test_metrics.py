"""/metrics through a real app: thread, approval, decision, tool and HTTP metrics; the database gauges; the token.

The process's counters are shared by every test in it, so the tests compare values before and after.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.events import UserMessage, Via, new_id
from bot.store import OutboxItem
from bot.thread import Thread
from storage import SqlStore, upgrade
from tests.channels.web.conftest import PRODUCTION_DEPLOY, running_inbox
from tests.support.databases import move_table_away, sqlite_url
from tests.support.fake_slack import BOT_TOKEN, FakeSlack

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample by (name, labels)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(url: str, headers: Mapping[str, str] | None = None) -> Samples:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}/metrics", headers=dict(headers or {}))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


async def test_a_deploy_through_approval_shows_on_the_dashboard_metrics(database_url: str) -> None:
    """Waiting: a thread and a pending approval with its age. Approved: the decision latency, the tool run, done."""
    async with running_inbox(database_url) as inbox:
        local = inbox.client()
        await local.login_by_url(inbox.login_token)
        before = await scrape(inbox.url)
        thread_id = await local.start(PRODUCTION_DEPLOY)
        await inbox.wait_status(thread_id, "waiting_for_approval")
        waiting = await scrape(inbox.url)
        assert value(waiting, "opsgate_threads", status="waiting_for_approval", agent="deploy") == 1
        assert value(waiting, "opsgate_pending_approvals", agent="deploy") == 1
        assert 0 <= value(waiting, "opsgate_pending_approval_oldest_age_seconds", agent="deploy") < 60
        assert value(waiting, "opsgate_database_up") == 1
        await local.decide(thread_id, "approve")
        await inbox.wait_status(thread_id, "done")
        after = await scrape(inbox.url)
        await local.aclose()
    decided = ("opsgate_decision_latency_seconds_count", {"agent": "deploy", "action": "deploy",
                                                          "decision": "approved"})
    assert value(after, decided[0], **decided[1]) - value(before, decided[0], **decided[1]) == 1
    ran = {"agent": "deploy", "action": "deploy", "outcome": "ok"}
    assert value(after, "opsgate_tool_executions_total", **ran) - value(before, "opsgate_tool_executions_total",
                                                                         **ran) == 1
    assert value(after, "opsgate_threads", status="done", agent="deploy") == 1
    assert value(after, "opsgate_pending_approvals", agent="deploy") == 0
    routes = {dict(labels).get("route") for name, labels in after if name == "opsgate_http_request_seconds_count"}
    assert "/t/{thread_id}/decide" in routes and "/metrics" in routes
    assert not any(thread_id in (route or "") for route in routes)  # templates, never raw paths


async def test_the_snapshot_reports_outbox_backlog_and_threads_no_worker_holds(database_url: str) -> None:
    """Pending outbox rows per channel with the oldest's age; a runnable unleased thread is lease lag."""
    await upgrade(database_url)
    store = SqlStore.from_url(database_url)
    try:
        first = UserMessage(text="hi", user="bob", via=Via(channel="api"))
        thread = Thread(id=new_id(), agent="deploy", events=[first])
        await store.create_thread(thread, "running", outbox=[OutboxItem(channel="slack", payload={"text": "x"}),
                                                              OutboxItem(channel="slack", payload={"text": "y"})])
        time.sleep(0.05)  # noqa: ASYNC251  (ages are measured against the wall clock)
        snapshot = await store.ops_snapshot()
        assert [(b.channel, b.count) for b in snapshot.outbox] == [("slack", 2)]
        assert snapshot.outbox[0].oldest_age_seconds >= 0.04
        assert snapshot.runnable_unclaimed == 1 and snapshot.lease_lag_seconds >= 0.04
        assert await store.claim_threads("worker-1", 60) == [thread.id]
        claimed = await store.ops_snapshot()
        assert claimed.runnable_unclaimed == 0 and claimed.lease_lag_seconds == 0
        assert [(c.status, c.agent, c.count) for c in claimed.threads] == [("running", "deploy", 1)]
    finally:
        await store.close()


async def test_metrics_can_require_a_token(sqlite_database_url: str) -> None:
    """With OPSGATE_METRICS_TOKEN the scrape needs it as a bearer token (401 otherwise)."""
    async with running_inbox(sqlite_database_url, {"OPSGATE_METRICS_TOKEN": "scrape-me"}) as inbox:
        async with httpx.AsyncClient() as http:
            refused = await http.get(f"{inbox.url}/metrics")
            wrong = await http.get(f"{inbox.url}/metrics", headers={"Authorization": "Bearer nope"})
        assert refused.status_code == wrong.status_code == 401
        assert value(await scrape(inbox.url, {"Authorization": "Bearer scrape-me"}), "opsgate_database_up") == 1


async def test_a_scrape_answers_when_the_database_does_not(tmp_path: Path) -> None:
    """The threads table unreadable: /metrics still answers, with opsgate_database_up 0 and no stale gauges."""
    async with running_inbox(sqlite_url(tmp_path / "opsgate.db")) as inbox:
        assert value(await scrape(inbox.url), "opsgate_database_up") == 1
        await move_table_away(sqlite_url(tmp_path / "opsgate.db"), "threads")
        samples = await scrape(inbox.url)
    assert value(samples, "opsgate_database_up") == 0
    assert not any(name == "opsgate_threads" for name, _ in samples)


async def test_slack_acks_are_timed_under_their_route(sqlite_database_url: str) -> None:
    """POST /slack/events is measured as route="/slack/events" (the ack latency), here a refused unsigned call."""
    with FakeSlack() as slack:
        env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": "signing-secret", "SLACK_API_URL": slack.api_url}
        async with running_inbox(sqlite_database_url, env) as inbox:
            before = await scrape(inbox.url)
            async with httpx.AsyncClient() as http:
                refused = await http.post(f"{inbox.url}/slack/events", content=b"{}",
                                          headers={"Content-Type": "application/json"})
            after = await scrape(inbox.url)
    labels = {"method": "POST", "route": "/slack/events", "status": str(refused.status_code)}
    assert refused.status_code in (401, 403)
    count = "opsgate_http_request_seconds_count"
    assert value(after, count, **labels) - value(before, count, **labels) == 1
