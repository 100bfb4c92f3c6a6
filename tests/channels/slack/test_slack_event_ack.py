"""The ack in front of the app: signed message events answered from the inbox; everything else passed on intact."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from starlette.types import Message, Receive, Scope, Send

from bot.runtime import Runtime
from bot.store import Store
from channels.slack import SlackChannel
from channels.slack.event_ack import EventAck
from channels.slack.route import EVENTS_PATH
from channels.slack.slack_event_inbox import INBOX, EventInbox
from tests.channels.slack.slack_requests import SIGNING_SECRET, mention, signed_headers


class App:
    """The app behind the fast path: records what reached it, reads the whole body, answers 418."""

    def __init__(self, inbox: EventInbox | None = None) -> None:
        self.bodies: list[bytes] = []
        self.inbox = inbox
        self.acks_in_flight: list[int] = []  # what the ack layer counted while this app handled a request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.inbox is not None:
            self.acks_in_flight.append(self.inbox.foreground.in_flight)
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(app: Any, body: bytes, headers: dict[str, str], *, chunks: int = 1,
               path: str = EVENTS_PATH, method: str = "POST") -> list[Message]:
    """One request through ``app`` as a server would make it (body in ``chunks`` messages); what was sent."""
    size = -(-len(body) // chunks) if body else 1
    parts = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    incoming: list[Message] = [{"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
                               for i, part in enumerate(parts)]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path,
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    await app(scope, receive, send)
    return sent


def status(sent: list[Message]) -> int:
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


def signed(envelope: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(envelope).encode()
    return body, signed_headers(SIGNING_SECRET, body, "application/json")


@pytest.fixture
def inbox(runtime: Runtime) -> EventInbox:
    channel = next(c for c in runtime.channels if isinstance(c, SlackChannel))
    return channel.inbox(runtime.service)


async def test_a_signed_mention_is_recorded_and_answered_without_the_app(inbox: EventInbox) -> None:
    app = App()
    body, headers = signed(mention("deploy api", ts="1732270000.000100", event_id="EvFast"))
    sent = await call(EventAck(app, path=EVENTS_PATH, secret=SIGNING_SECRET, inbox=inbox), body, headers, chunks=3)
    assert status(sent) == 200 and app.bodies == []
    [item] = await inbox.store.inbox_claim(INBOX, 10, 10.0)
    assert (item.key, item.body) == ("EvFast", body.decode())  # the exact bytes Slack signed


@pytest.mark.parametrize("problem", ["bad signature", "not an event we record", "other path", "GET"])
async def test_everything_else_reaches_the_app_with_every_byte(inbox: EventInbox, problem: str) -> None:
    """Handed on with the bytes read replayed, and no longer counted as an ack in flight (a click's dialog work
    must not hold back the background)."""
    app = App(inbox)
    envelope = mention("deploy api", ts="1732270000.000100", event_id="EvSlow")
    if problem == "not an event we record":
        envelope = {"type": "url_verification", "challenge": "x" * 5000, "token": "t"}
    body, headers = signed(envelope)
    if problem == "bad signature":
        headers["X-Slack-Signature"] = "v0=" + "0" * 64
    path = "/threads" if problem == "other path" else EVENTS_PATH
    method = "GET" if problem == "GET" else "POST"
    sent = await call(EventAck(app, path=EVENTS_PATH, secret=SIGNING_SECRET, inbox=inbox), body, headers,
                      chunks=4, path=path, method=method)
    assert status(sent) == 418 and app.bodies == [body] and app.acks_in_flight == [0]
    assert await inbox.store.inbox_claim(INBOX, 10, 10.0) == []


async def test_a_body_over_the_limit_reaches_the_app_whole_and_is_not_recorded(inbox: EventInbox) -> None:
    """The fast path stops reading at its limit; the app (its body limit answers 413) sees the whole stream."""
    app = App()
    envelope = mention("x" * 3000, ts="1732270000.000100", event_id="EvBig")
    body, headers = signed(envelope)
    headers.pop("Content-Length", None)  # sent chunked: only counting can catch it
    sent = await call(EventAck(app, path=EVENTS_PATH, secret=SIGNING_SECRET, inbox=inbox, limit=1000), body,
                      headers, chunks=8)
    assert status(sent) == 418 and app.bodies == [body]
    assert await inbox.store.inbox_claim(INBOX, 10, 10.0) == []


class DownStore:
    """A store whose database refuses every write (what an outage looks like to the inbox)."""

    async def inbox_put(self, channel: str, key: str, body: str) -> bool:
        raise ConnectionError("database is down")


async def test_an_event_the_database_cannot_take_is_503_with_retry_after() -> None:
    app = App()
    async def never(body: dict[str, Any]) -> None:
        raise AssertionError("nothing is recorded, so nothing is handled")

    inbox = EventInbox(cast(Store, DownStore()), handle=never, poll_interval=1.0)
    body, headers = signed(mention("deploy api", ts="1732270000.000100", event_id="EvDown"))
    sent = await call(EventAck(app, path=EVENTS_PATH, secret=SIGNING_SECRET, inbox=inbox), body, headers)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 503 and (b"retry-after", b"5") in start["headers"] and app.bodies == []
    assert inbox.foreground.in_flight == 0  # the ack is no longer counted in flight
