"""A side effect that happened is reported as happened: a webhook 2xx followed by a failing ledger write.

Real `opsgate serve` processes on SQLite and PostgreSQL; the ledger write fails for real because the records
table has been renamed away after migration (every INSERT into it is a database error, not a duplicate key).
"""

from __future__ import annotations

import json
from pathlib import Path

from storage import upgrade
from tests.conftest import WEBHOOK_SECRET
from tests.support.api_client import TOKEN, ApiClient
from tests.support.databases import move_table_away
from tests.support.processes import OpsgateProcess
from tests.support.webhook_receiver import WebhookReceiver

STAGING = "!deploy service=api version=1.4.2 environment=staging"
SQL_WORDS = ("INSERT", "records", "sqlalchemy", "sqlite3", "asyncpg", "Traceback", "[SQL")


async def break_the_ledger(url: str) -> None:
    """Migrate, then move the records table away so that writing the ledger fails."""
    await upgrade(url)
    await move_table_away(url, "records")


async def test_a_webhook_success_then_a_ledger_failure_reads_as_deployed(
    database_url: str, webhook: WebhookReceiver, tmp_workdir: Path
) -> None:
    """The result says deployed (ok), the webhook was called once, no SQL reaches the thread, the log has the id."""
    await break_the_ledger(database_url)
    env = {"DATABASE_URL": database_url, "OPSGATE_API_TOKEN": TOKEN, "OPSGATE_API_TRUSTED_RELAY": "true",
           "OPSGATE_POLL_INTERVAL": "0.05",
           "OPSGATE_DEPLOY_WEBHOOK_URL": webhook.url, "OPSGATE_WEBHOOK_SECRET": WEBHOOK_SECRET}
    async with OpsgateProcess(env, cwd=tmp_workdir) as server:
        api = ApiClient(server.url)
        try:
            thread = await api.wait(await api.start(STAGING, user="bob"), "done", "failed")
        finally:
            await api.aclose()
        records = server.log_records()

    assert thread["status"] == "done"
    [result] = [e for e in thread["events"] if e["type"] == "action_result"]
    assert result["ok"] is True
    assert result["result"].startswith("deploy of api 1.4.2 to staging sent to the webhook")
    assert "nothing was repeated" in result["result"]
    assert len(webhook.calls) == 1
    assert [e["type"] for e in thread["events"]].count("execution_started") == 1
    shown = json.dumps(thread["events"])
    assert not [word for word in SQL_WORDS if word in shown], shown

    [error] = [r for r in records if r.get("event") == "tool_error"]
    assert f"error id {error['error_id']}" in result["result"]
    assert error["idempotency_key"] == webhook.calls[0].json["idempotency_key"]
    assert "records" in json.dumps(error)  # the details are in the log, where an operator looks


async def test_an_internal_failure_before_any_side_effect_is_a_failure_with_an_error_id(
    database_url: str, tmp_workdir: Path
) -> None:
    """Without a webhook the ledger write is the deploy: its failure is a failed result with an id, no SQL."""
    await break_the_ledger(database_url)
    env = {"DATABASE_URL": database_url, "OPSGATE_API_TOKEN": TOKEN, "OPSGATE_API_TRUSTED_RELAY": "true",
           "OPSGATE_POLL_INTERVAL": "0.05"}
    async with OpsgateProcess(env, cwd=tmp_workdir) as server:
        api = ApiClient(server.url)
        try:
            thread = await api.wait(await api.start(STAGING, user="bob"), "done", "failed")
        finally:
            await api.aclose()
        records = server.log_records()

    [result] = [e for e in thread["events"] if e["type"] == "action_result"]
    assert result["ok"] is False
    [error] = [r for r in records if r.get("event") == "tool_error"]
    assert result["result"] == f"internal error (error id {error['error_id']}); the details are in opsgate's log"
    shown = json.dumps(thread["events"])
    assert not [word for word in SQL_WORDS if word in shown], shown


async def test_a_request_that_fails_inside_answers_an_error_id_not_a_trace(
    sqlite_database_url: str, tmp_workdir: Path
) -> None:
    """With the threads table gone, GET /threads is a 500 whose body has only an error id; the log has the rest."""
    await upgrade(sqlite_database_url)
    await move_table_away(sqlite_database_url, "threads")
    env = {"DATABASE_URL": sqlite_database_url, "OPSGATE_API_TOKEN": TOKEN, "OPSGATE_API_TRUSTED_RELAY": "true",
           "OPSGATE_POLL_INTERVAL": "0.05"}
    async with OpsgateProcess(env, cwd=tmp_workdir) as server:
        api = ApiClient(server.url)
        try:
            response = await api.http.get("/threads")
        finally:
            await api.aclose()
        record = await server.wait_for_log(event="request_failed")
    assert response.status_code == 500
    assert response.json() == {
        "detail": f"internal error (error id {record['error_id']}); the details are in opsgate's log"}
    assert record["path"] == "/threads" and "threads" in json.dumps(record)
