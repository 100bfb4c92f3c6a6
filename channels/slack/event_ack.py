"""The ack that never waits, as plain ASGI in front of the app: verify, record, 200, for message events only.

An ack is a few hundred microseconds of work, and under a burst every microsecond is paid once per event in
the queue (200 events at once: the last waits for the 199 before it). Going through the app's middleware
(metrics route lookup, body limit, bearer gate, FastAPI's routing and exception layers) cost more than the ack
itself, so ``POST /slack/events`` carrying a signed message or mention event is answered here: signature
headers, a bounded read, the HMAC (``verify.py``), the event recorded in the inbox in a grouped commit, 200.

Anything else, or anything wrong, goes on to the app untouched, with the bytes read so far replayed: a bad or
missing signature, an oversized body, url_verification, clicks, modals, /opsgate. The app's route answers those
exactly as before (401, 413, 400, bolt), so the fast path adds no answers of its own beyond 200 and, when the
database cannot take the event, 503 with ``Retry-After`` (Slack retries it).
"""

from __future__ import annotations

import time

import structlog
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import metrics
from channels.slack.slack_event_inbox import EventInbox, event_id_of
from channels.slack.verify import MAX_BODY_BYTES, Rejected, check_headers, check_length, signed

log = structlog.get_logger("opsgate.slack")

_OK = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
_EMPTY = {"type": "http.response.body", "body": b""}
RETRY_AFTER_SECONDS = 5


def retry_later() -> JSONResponse:
    """503 with ``Retry-After``: the request failed for a reason a retry can fix, and Slack retries events."""
    return JSONResponse({"error": "temporarily unavailable"}, status_code=503,
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class EventAck:
    """ASGI middleware answering verified message events on ``path`` from the inbox alone."""

    def __init__(self, app: ASGIApp, *, path: str, secret: str, inbox: EventInbox,
                 limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.path = path
        self.secret = secret
        self.inbox = inbox
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        headers = Headers(scope=scope)
        try:
            timestamp, sent = check_headers(headers, now=time.time())
            check_length(headers, self.limit)
        except Rejected:
            await self.app(scope, receive, send)  # the route refuses it, and logs why
            return
        with self.inbox.foreground.serving():  # background work waits while this ack is answered
            read, body, complete = await _read(receive, self.limit)
            event_id = event_id_of(body) if complete and signed(self.secret, timestamp, body, sent) else None
            recorded = event_id is not None and await self._record(event_id, body)
        if event_id is None:  # not an ack of ours: handed on (and no longer counted as one)
            await self.app(scope, _replaying(read, receive), send)
            return
        if not recorded:
            await retry_later()(scope, receive, send)
            _observe(began, "503")
            return
        await send(_OK)
        await send(_EMPTY)
        _observe(began, "200")

    async def _record(self, event_id: str, body: bytes) -> bool:
        """Commit the event before the 200 (a retry finds its row); False when the database could not take it."""
        try:
            await self.inbox.record(event_id, body)
        except Exception:
            log.exception("slack_event_not_recorded", event_id=event_id)
            return False
        return True



async def _read(receive: Receive, limit: int) -> tuple[list[Message], bytes, bool]:
    """The messages read, the body, and whether it is whole: stops at a disconnect or past ``limit`` bytes."""
    read: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            return read, b"", False  # the client went away: the app sees that too
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return read, b"", False  # too large: the app's body limit answers 413
        if not message.get("more_body", False):
            return read, b"".join(chunks), True


def _replaying(read: list[Message], receive: Receive) -> Receive:
    """``receive`` for the app: the messages already read first, then the rest of the stream."""
    pending = list(read)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _observe(began: float, status: str) -> None:
    metrics.HTTP_SECONDS.labels("POST", "/slack/events", status).observe(time.perf_counter() - began)
