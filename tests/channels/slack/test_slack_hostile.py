"""Hostile input at a real `opsgate serve`: unsigned garbage, huge uploads, replays, poison events, NUL.

Signed requests are built exactly as Slack builds them; the server's memory is read from /proc while it works.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest

from channels.slack.slack_event_inbox import MAX_ATTEMPTS
from storage import store_for
from tests.channels.slack.e2e_support import (
    APPROVER,
    CHANNEL,
    REQUESTER,
    button_value,
    card_after_mention,
    deploy_call,
    one_thread,
)
from tests.channels.slack.slack_requests import SIGNING_SECRET, SlackSender, click, mention, slash
from tests.support.api_client import ApiClient
from tests.support.fake_slack import FakeSlack
from tests.support.model_replies import tool_call
from tests.support.model_server import ScriptedModelServer
from tests.support.processes import OpsgateProcess
from tests.support.webhook_receiver import WebhookReceiver

MB = 1024 * 1024
CHUNK = b"A" * 65536


def rss_mb(pid: int | None) -> float:
    """Resident memory of a process, from /proc."""
    assert pid is not None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def fifty_megabytes() -> AsyncIterator[bytes]:
    for _ in range(50 * MB // len(CHUNK)):
        yield CHUNK


# --- verify before parse ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", b"{not json"),
    ("application/json", b"\xff\xfe\x00garbage"),
    ("application/x-www-form-urlencoded", b"payload=%7Bbroken"),
    ("text/plain", b""),
    ("application/json", b'{"type":"url_verification","challenge":"x"}'),
])
async def test_unsigned_garbage_is_401_never_500(
    sender: SlackSender, api: ApiClient, content_type: str, body: bytes,
) -> None:
    """Anything without a valid signature is refused with 401 before it is parsed, whatever it contains."""
    response = await sender.http.post("/slack/events", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 401 and response.json() == {"error": "invalid request"}
    forged = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "ab" * 32}
    response = await sender.http.post("/slack/events", content=body,
                                      headers={"Content-Type": content_type, **forged})
    assert response.status_code == 401
    assert (await api.http.get("/threads")).json() == []


async def test_signed_but_unreadable_body_is_400(sender: SlackSender) -> None:
    """A correctly signed body that is not the JSON its content type says is a clear 400, not a crash."""
    response = await sender.post(b"{not json", "application/json")
    assert response.status_code == 400 and response.json() == {"error": "unreadable body"}
    body, timestamp = b"\xff\xfe", str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    response = await sender.http.post("/slack/events", content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}"})
    assert response.status_code == 400  # signed bytes that are not UTF-8


async def test_fifty_megabyte_uploads_are_refused_without_the_process_growing(
    sender: SlackSender, opsgate: OpsgateProcess,
) -> None:
    """50 MB unsigned, or with a fresh (bad) signature, declared or chunked -> 413 unread; RSS stays flat.

    The server-wide body limit (bot/body_limit.py) answers a declared size before the route's signature check.
    """
    for i in range(5):  # warm up: every code path of a normal request has run once
        await sender.event(mention("hello", ts=f"1732270000.00010{i}", event_id=f"EvWarm{i}"))
    before = rss_mb(opsgate.pid)
    fresh = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "ab" * 32,
             "Content-Type": "application/json"}
    http = sender.http
    started = time.perf_counter()
    unsigned = await http.post("/slack/events", content=b"A" * (50 * MB),
                               headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 413
    declared = await http.post("/slack/events", content=b"A" * (50 * MB), headers=fresh)
    assert declared.status_code == 413
    chunked = await http.post("/slack/events", content=fifty_megabytes(), headers=fresh)
    assert chunked.status_code == 413
    print(f"3 x 50 MB refused in {time.perf_counter() - started:.2f} s")
    grown = rss_mb(opsgate.pid) - before
    print(f"RSS before {before:.1f} MB, growth after 3 x 50 MB refused: {grown:.1f} MB")  # shown with -s
    assert grown < 20, f"opsgate grew by {grown:.1f} MB while refusing 150 MB of uploads"
    assert (await sender.event(mention("still here", ts="1732270099.000100", event_id="EvAfter"))).status_code == 200


# --- replays ------------------------------------------------------------------------------------------------


async def test_replayed_slash_command_starts_no_second_thread(
    sender: SlackSender, slack: FakeSlack, webhook: WebhookReceiver, api: ApiClient,
) -> None:
    """The same signed /opsgate request sent again within the window: one thread, one deploy, one root post."""
    body = urlencode(slash("deploy service=api version=1.4.2 environment=staging")).encode()
    timestamp = int(time.time())
    first = await sender.post(body, "application/x-www-form-urlencoded", timestamp=timestamp)
    assert first.status_code == 200 and "On it" in first.text
    await slack.wait_for("chat.postMessage", count=3)  # root, result, done
    replays = await asyncio.gather(*(
        sender.post(body, "application/x-www-form-urlencoded", timestamp=timestamp) for _ in range(3)))
    assert [r.status_code for r in replays] == [200] * 3
    assert all("already handled" in r.text for r in replays)
    thread = await one_thread(api)
    assert thread["status"] == "done"
    assert len(webhook.accepted) == 1
    await asyncio.sleep(0.5)  # give a wrongly started second thread time to post
    assert len(slack.calls_to("chat.postMessage")) == 3
    # The same words typed again are a new request: Slack gives every one a fresh trigger_id.
    form = {**slash("deploy service=api version=1.4.2 environment=staging"), "trigger_id": "1337.42.again"}
    again = await sender.post(urlencode(form).encode(), "application/x-www-form-urlencoded", timestamp=timestamp)
    assert again.status_code == 200 and "On it" in again.text


async def test_replayed_approve_click_decides_and_posts_nothing_twice(
    sender: SlackSender, slack: FakeSlack, model_server: ScriptedModelServer, webhook: WebhookReceiver,
    api: ApiClient,
) -> None:
    """A captured Approve click sent again: no second decision, no refusal note, no second card update."""
    model_server.script(deploy_call(), tool_call("done_for_now", message="api 1.4.2 is live"))
    card = await card_after_mention(sender, slack)
    payload = click("opsgate_approve", button_value(card, "opsgate_approve"), user=APPROVER, channel=CHANNEL,
                    message_ts="1732270010.000200", thread_ts="1732270000.000100")
    body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
    timestamp = int(time.time())
    first = await sender.post(body, "application/x-www-form-urlencoded", timestamp=timestamp)
    assert first.status_code == 200
    await slack.wait_for("chat.postMessage", lambda c: c.args.get("text") == "api 1.4.2 is live")
    replay = await sender.post(body, "application/x-www-form-urlencoded", timestamp=timestamp)
    assert replay.status_code == 200
    await asyncio.sleep(0.5)
    thread = await one_thread(api)
    types = [e["type"] for e in thread["events"]]
    assert types.count("approval_decided") == 1 and "decision_refused" not in types
    assert len(slack.calls_to("chat.update")) == 1
    assert slack.calls_to("chat.postEphemeral") == []
    assert len(webhook.accepted) == 1


# --- failures and poison events -----------------------------------------------------------------------------


async def _fail_inserts(url: str, table: str, condition: str = "true") -> None:
    """A real storage failure on PostgreSQL: inserting a row of ``table`` matching ``condition`` raises."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f"""
            CREATE FUNCTION opsgate_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF {condition} THEN
                    RAISE EXCEPTION 'disk on fire (test)' USING ERRCODE = 'XX000';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER opsgate_test_fail BEFORE INSERT ON {table}
                FOR EACH ROW EXECUTE FUNCTION opsgate_test_fail();
        """)
    finally:
        await conn.close()


async def _poison_refs(url: str, key: str) -> None:
    """Inserting the ref ``key`` fails."""
    await _fail_inserts(url, "refs", f"NEW.key = '{key}'")


async def _cure(url: str, table: str = "refs") -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f"DROP TRIGGER opsgate_test_fail ON {table}")
    finally:
        await conn.close()


@pytest.mark.parametrize("server_db", ["postgres"], indirect=True)
async def test_failing_slash_command_is_answered_with_an_error_id(
    sender: SlackSender, opsgate: OpsgateProcess, server_db: str,
) -> None:
    """The database refuses the new thread: the person gets an answer with an error id, not an error page."""
    await _fail_inserts(server_db, "threads")
    response = await sender.command(slash("deploy service=api version=1.4.2 environment=staging"))
    assert response.status_code == 200
    assert "could not start this (error id" in response.text and "disk on fire" not in response.text
    # The answer can reach us before the process's log line does (its stdout is a file read here).
    failed = await opsgate.wait_for_log(event="slack_command_failed")
    assert [r for r in opsgate.log_records() if r.get("event") == "slack_command_failed"] == [failed]
    assert failed["error_id"] in response.text and "disk on fire" in failed["exception"]
    await _cure(server_db, "threads")
    assert "On it" in (await sender.command(slash("help"))).text


@pytest.mark.parametrize("server_db", ["postgres"], indirect=True)
async def test_event_failing_every_attempt_is_quarantined(
    sender: SlackSender, api: ApiClient, opsgate: OpsgateProcess, server_db: str,
) -> None:
    """A storage error: the event is acked once recorded, retried with backoff, then quarantined; Slack's retry
    of the same event changes nothing."""
    await _poison_refs(server_db, "EvPoison")
    envelope = mention("deploy api", ts="1732270000.000100", event_id="EvPoison")
    assert (await sender.event(envelope)).status_code == 200
    await opsgate.wait_for_log(event="quarantined", key="EvPoison", timeout=30)
    store = store_for(server_db)
    try:
        [item] = await store.list_quarantine()
    finally:
        await store.close()
    assert (item.channel, item.key, item.attempts) == ("slack", "EvPoison", MAX_ATTEMPTS)
    assert "deploy api" in (item.detail or "")
    failed = [r for r in opsgate.log_records() if r.get("event") == "slack_event_failed"]
    assert len(failed) == MAX_ATTEMPTS - 1
    assert (await sender.event(envelope, retry_num=1)).status_code == 200
    assert (await api.http.get("/threads")).json() == []


@pytest.mark.parametrize("server_db", ["postgres"], indirect=True)
async def test_event_that_fails_once_is_kept_by_the_inbox_retry(
    sender: SlackSender, api: ApiClient, opsgate: OpsgateProcess, server_db: str,
) -> None:
    """The database fails the first attempt; it recovers and the inbox's retry becomes the thread."""
    await _poison_refs(server_db, "EvFlaky")
    envelope = mention("!help", ts="1732270000.000100", event_id="EvFlaky")
    assert (await sender.event(envelope)).status_code == 200
    await opsgate.wait_for_log(event="slack_event_failed", event_id="EvFlaky")
    await _cure(server_db)
    await opsgate.wait_for_log(event="slack_event", event_id="EvFlaky", timeout=30)
    thread = await one_thread(api)
    assert thread["events"][0]["text"] == "!help"


@pytest.mark.parametrize("server_db", ["postgres"], indirect=True)
async def test_mention_with_a_nul_byte_becomes_a_thread_on_postgresql(
    sender: SlackSender, api: ApiClient, model_server: ScriptedModelServer, opsgate: OpsgateProcess,
) -> None:
    """NUL in a mention (JSON \\u0000) is stored as U+FFFD on PostgreSQL: 200, a thread, nothing lost."""
    model_server.script(tool_call("done_for_now", message="ok"))
    response = await sender.event(mention("deploy\x00api <!channel> & co", user=REQUESTER,
                                          ts="1732270000.000100", event_id="EvNul\x00"))
    assert response.status_code == 200
    await opsgate.wait_for_log(event="slack_event", outcome="started")  # threads are made after the ack
    thread = await one_thread(api)
    assert thread["events"][0]["text"] == "deploy\ufffdapi <!channel> & co"
    retried = await sender.event(mention("deploy\x00api <!channel> & co", user=REQUESTER,
                                         ts="1732270000.000100", event_id="EvNul\x00"), retry_num=1)
    assert retried.status_code == 200
    assert len((await api.http.get("/threads")).json()) == 1  # the cleaned event id still de-duplicates


async def test_slack_retry_of_a_good_event_after_a_503_is_harmless(sender: SlackSender, api: ApiClient) -> None:
    """A retry marked X-Slack-Retry-Num of an event already stored changes nothing (no second thread)."""
    envelope = mention("!help", ts="1732270000.000100", event_id="EvOnce")
    assert (await sender.event(envelope)).status_code == 200
    assert (await sender.event(envelope, retry_num=2)).status_code == 200
    assert len((await api.http.get("/threads")).json()) == 1


async def test_http_client_sees_no_connection_reset_on_refusal(opsgate: OpsgateProcess) -> None:
    """A refused upload is answered on a connection the client can keep using (the rest is discarded)."""
    async with httpx.AsyncClient(base_url=opsgate.url, timeout=30) as http:
        refused = await http.post("/slack/events", content=b"A" * (5 * MB))
        assert refused.status_code == 413  # the server-wide body limit, before the route reads anything
        assert (await http.get("/healthz")).status_code == 200
