"""The Slack ack path: events recorded before the 200, threads made in the background, once, even across a crash."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import func, select

from bot.runtime import Runtime
from channels.slack import SlackChannel
from channels.slack.slack_event_inbox import INBOX, event_id_of
from storage import SqlStore, store_for
from storage.schema import inbox
from tests.channels.slack.e2e_support import REQUESTER, both_databases
from tests.channels.slack.slack_requests import SlackSender, mention
from tests.support.api_client import ApiClient
from tests.support.model_replies import tool_call
from tests.support.model_server import ScriptedModelServer
from tests.support.processes import OpsgateProcess


def body_of(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, separators=(",", ":")).encode()


async def user_messages(api: ApiClient) -> dict[str, int]:
    """Every thread's title -> how many user messages it has."""
    counts: dict[str, int] = {}
    for summary in (await api.http.get("/threads")).json():
        thread = await api.thread(summary["id"])
        counts[summary["title"]] = [e["type"] for e in thread["events"]].count("user_message")
    return counts


async def inbox_rows(store: SqlStore) -> int:
    """Rows in the inbox table, waiting or leased."""
    async with store.reader.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(inbox))).scalar() or 0)


async def until(check: Any, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Poll ``check()`` (async) until it is true; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def test_only_message_and_mention_callbacks_take_the_fast_path() -> None:
    """Events the inbox records are message/app_mention callbacks with an event id; the rest goes to bolt."""
    envelope = mention("deploy", ts="1732270000.000100", event_id="Ev1")
    assert event_id_of(body_of(envelope)) == "Ev1"
    assert event_id_of(body_of({**envelope, "type": "url_verification"})) is None
    assert event_id_of(body_of({**envelope, "event": {**envelope["event"], "type": "reaction_added"}})) is None
    assert event_id_of(body_of({**envelope, "event_id": ""})) is None
    assert event_id_of(body_of({**envelope, "event_id": "E" * 256})) is None
    assert event_id_of(b"payload=%7B%7D") is None and event_id_of(b"[1]") is None


async def test_recorded_events_become_threads_once(runtime: Runtime, store: SqlStore) -> None:
    """A retry of a waiting event is not recorded twice; the loop makes one thread per event and empties the
    inbox; events of one Slack thread are handled in order (the reply continues the thread it started)."""
    channel = next(c for c in runtime.channels if isinstance(c, SlackChannel))
    inbox = channel.inbox(runtime.service)
    first = mention("deploy api", user=REQUESTER, ts="1732270000.000100", event_id="EvA")
    reply = mention("to staging", user=REQUESTER, ts="1732270001.000100", thread_ts="1732270000.000100",
                    event_id="EvB")
    other = mention("status?", user=REQUESTER, ts="1732270002.000100", event_id="EvC")
    assert await inbox.record("EvA", body_of(first)) is True
    assert await inbox.record("EvA", body_of(first)) is False  # Slack's retry while it still waits
    assert await inbox.record("EvB", body_of(reply)) is True
    assert await inbox.record("EvC", body_of(other)) is True
    task = asyncio.create_task(inbox.run())
    try:
        async def handled() -> bool:
            return await inbox_rows(store) == 0

        await until(handled)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    threads = {s.title: await store.load_thread(s.id) for s in await store.list_threads()}
    assert set(threads) == {"deploy api", "status?"}
    started = threads["deploy api"]
    assert started is not None
    assert [getattr(e, "text", None) for e in started.events if e.type == "user_message"] == [
        "deploy api", "to staging"]
    # Recorded again after it was handled (a late retry): handled again, and it changes nothing.
    assert await inbox.record("EvA", body_of(first)) is True
    await inbox.handle_all(await store.inbox_claim(INBOX, 10, 30.0))
    assert len(await store.list_threads()) == 2


@both_databases
async def test_a_crash_between_the_ack_and_the_thread_loses_nothing(
    opsgate: OpsgateProcess, sender: SlackSender, api: ApiClient, model_server: ScriptedModelServer,
    server_db: str,
) -> None:
    """The process dies after committing an event (the ack went out) but before making its thread: the next
    start makes the thread, once; Slack's retry of the same event afterwards changes nothing."""
    model_server.responder = lambda _: tool_call("done_for_now", message="noted")
    assert (await sender.event(mention("before the crash", ts="1732270000.000100", event_id="EvOk"))).status_code \
        == 200
    await until(lambda: _titles_are(api, {"before the crash"}))
    store = store_for(server_db)
    try:
        # (A row claimed but not yet deleted when the process dies waits for its lease, 30 s: not this test.)
        await until(lambda: _inbox_empty(store))
        await opsgate.kill()  # SIGKILL
        # What the ack of the next event left behind when the process died right after it: the raw event.
        envelope = mention("after the ack", ts="1732270100.000100", event_id="EvCrash")
        assert await store.inbox_put(INBOX, "EvCrash", body_of(envelope).decode())
    finally:
        await store.close()
    await opsgate.start()
    await until(lambda: _titles_are(api, {"before the crash", "after the ack"}))
    store = store_for(server_db)
    try:
        assert (await sender.event(envelope, retry_num=1)).status_code == 200

        await until(lambda: _inbox_empty(store))  # its row is deleted once handled (leased rows count too)
    finally:
        await store.close()
    assert await user_messages(api) == {"before the crash": 1, "after the ack": 1}


async def _inbox_empty(store: SqlStore) -> bool:
    return await inbox_rows(store) == 0


async def _titles_are(api: ApiClient, titles: set[str]) -> bool:
    return {t["title"] for t in (await api.http.get("/threads")).json()} == titles
