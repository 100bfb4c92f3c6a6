"""POST /slack/events: verify the raw request (``verify.py``), then hand the verified bytes to bolt.

Answers: 401 unsigned, stale or badly signed; 413 over the body limit; 400 signed but unreadable; 503 with
``Retry-After`` when handling failed for a reason a retry can fix (Slack retries events); never a 500.
Bolt parses only bytes that passed verification. The request's replay key and a mutable ``Outcome`` travel to
the listeners in bolt's context, so a listener can ask for a retry without raising through bolt.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from fastapi import FastAPI
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from channels.slack.event_ack import EventAck, retry_later
from channels.slack.slack_event_inbox import EventInbox
from channels.slack.verify import MAX_BODY_BYTES, Rejected, verify

log = structlog.get_logger("opsgate.slack")

EVENTS_PATH = "/slack/events"
REQUEST_KEY = "opsgate_request_key"
OUTCOME = "opsgate_outcome"


@dataclass
class Outcome:
    """What a listener decided beyond its ack: ``retry`` turns the answer into a 503 so Slack sends it again."""

    retry: bool = False


def request_key(context: AsyncBoltContext) -> str | None:
    """The verified request's replay key (None in Socket Mode, where nothing is signed or replayable)."""
    key = context.get(REQUEST_KEY)
    return key if isinstance(key, str) else None


def ask_for_retry(context: AsyncBoltContext) -> bool:
    """Mark this request as failed-for-now (503); False when there is no HTTP answer to change (Socket Mode)."""
    outcome = context.get(OUTCOME)
    if isinstance(outcome, Outcome):
        outcome.retry = True
        return True
    return False


def _refused(exc: Rejected) -> JSONResponse:
    # Bolt's wording for 401, kept so clients see the same answer as before; no detail for the sender.
    error = "invalid request" if exc.status == 401 else "request too large"
    return JSONResponse({"error": error}, status_code=exc.status)


async def handle(bolt: AsyncApp, secret: str, request: Request) -> Response:
    """Verify, then dispatch to bolt (message events were answered before the app by ``event_ack.py``)."""
    try:
        verified = await verify(request.headers, request.stream(), secret)
    except ClientDisconnect:
        # The client went away, or bot/body_limit.py already answered 413 and cut the body off: nothing to say.
        return Response(status_code=413)
    except Rejected as exc:
        log.info("slack_request_rejected", status=exc.status, reason=exc.reason,
                 client=request.client.host if request.client else None)
        return _refused(exc)
    outcome = Outcome()
    try:
        bolt_request = to_async_bolt_request(
            request, verified.body, {REQUEST_KEY: verified.key, OUTCOME: outcome},
        )
    except ValueError as exc:  # signed, but not UTF-8 / not the JSON its content type says
        log.warning("slack_request_unreadable", error=f"{type(exc).__name__}: {exc}")
        return JSONResponse({"error": "unreadable body"}, status_code=400)
    response = await bolt.async_dispatch(bolt_request)
    if outcome.retry or response.status >= 500:
        if not outcome.retry:
            log.error("slack_request_failed", status=response.status)
        return retry_later()
    return to_starlette_response(response)


def mount_events(app: FastAPI, bolt: AsyncApp, secret: str, inbox: EventInbox | None = None,
                 limit: int = MAX_BODY_BYTES) -> None:
    """POST /slack/events: events, interactivity and the slash command on one URL, as the manifest says.

    With ``inbox``, signed message and mention events are answered in front of the app (``event_ack.py``:
    verified, recorded, 200); everything else reaches this route and bolt.
    """

    async def slack_events(request: Request) -> Response:
        return await handle(bolt, secret, request)

    app.add_api_route(EVENTS_PATH, slack_events, methods=["POST"], include_in_schema=False)
    if inbox is not None:  # added last: outermost, in front of the metrics, body limit and bearer layers
        app.add_middleware(EventAck, path=EVENTS_PATH, secret=secret, inbox=inbox, limit=limit)
