"""Requests built and signed exactly as Slack builds them: JSON events, form-encoded interactivity and commands.

Payloads start from the saved examples in ``payloads/`` and change only what a test needs.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from tests.support.fake_slack import BOT_USER_ID

PAYLOADS = Path(__file__).parent / "payloads"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
EVENTS_PATH = "/slack/events"


def load(name: str) -> dict[str, Any]:
    """A saved payload, as a fresh dict."""
    return dict(json.loads((PAYLOADS / f"{name}.json").read_text()))


def signed_headers(secret: str, body: bytes, content_type: str, timestamp: int | None = None) -> dict[str, str]:
    """X-Slack-Request-Timestamp and X-Slack-Signature (v0 HMAC-SHA256 of "v0:{ts}:{body}")."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body.decode())
    assert signature is not None
    return {
        "Content-Type": content_type, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature,
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }


# --- payload builders ---------------------------------------------------------------------------------------


def mention(
    text: str, *, user: str = "UALICE01", channel: str = "C0OPS0001", ts: str, thread_ts: str | None = None,
    event_id: str,
) -> dict[str, Any]:
    """An app_mention envelope; ``text`` gets our ``<@bot>`` tag in front."""
    envelope = load("app_mention")
    event = envelope["event"]
    event.update(text=f"<@{BOT_USER_ID}> {text}", user=user, channel=channel, ts=ts, event_ts=ts)
    if thread_ts:
        event["thread_ts"] = thread_ts
    envelope.update(event_id=event_id, event_time=int(float(ts)))
    return envelope


def direct_message(
    text: str, *, user: str = "UBOB0001", channel: str = "D0BOBDM01", ts: str, thread_ts: str | None = None,
    event_id: str,
) -> dict[str, Any]:
    """A message.im envelope."""
    envelope = load("message_im")
    event = envelope["event"]
    event.update(text=text, user=user, channel=channel, ts=ts, event_ts=ts)
    if thread_ts:
        event["thread_ts"] = thread_ts
    envelope.update(event_id=event_id, event_time=int(float(ts)))
    return envelope


def click(
    action_id: str, value: str, *, user: str, channel: str, message_ts: str, thread_ts: str | None,
) -> dict[str, Any]:
    """A block_actions payload for one of the buttons of the card at (channel, message_ts)."""
    payload = load("block_actions_approve")
    payload["user"] = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0TEST01"}
    payload["container"].update(channel_id=channel, message_ts=message_ts, thread_ts=thread_ts)
    payload["channel"]["id"] = channel
    payload["message"].update(ts=message_ts, thread_ts=thread_ts)
    payload["actions"][0].update(action_id=action_id, value=value)
    payload["trigger_id"] = f"{int(time.time())}.1730268040066.{action_id}"
    return payload


def submission(
    callback_id: str, private_metadata: str, values: Mapping[str, Mapping[str, str | None]], *, user: str,
) -> dict[str, Any]:
    """A view_submission payload with plain-text inputs ``{block_id: {action_id: value}}``."""
    payload = load("view_submission_reject")
    payload["user"] = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0TEST01"}
    view = payload["view"]
    view.update(callback_id=callback_id, private_metadata=private_metadata)
    view["state"] = {"values": {
        block: {action: {"type": "plain_text_input", "value": value} for action, value in inputs.items()}
        for block, inputs in values.items()
    }}
    return payload


def slash(text: str, *, user: str = "UALICE01", channel: str = "C0OPS0001") -> dict[str, str]:
    """The form of ``/opsgate <text>``."""
    form = {k: str(v) for k, v in load("slash_command").items()}
    form.update(text=text, user_id=user, channel_id=channel)
    return form


# --- sending ------------------------------------------------------------------------------------------------


class SlackSender:
    """Posts signed requests to an opsgate server's /slack/events, as Slack's servers do."""

    def __init__(self, base_url: str, secret: str = SIGNING_SECRET) -> None:
        self.secret = secret
        self.http = httpx.AsyncClient(base_url=base_url, timeout=15)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def post(
        self, body: bytes, content_type: str, *, timestamp: int | None = None, secret: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = signed_headers(secret or self.secret, body, content_type, timestamp)
        return await self.http.post(EVENTS_PATH, content=body, headers={**headers, **(extra or {})})

    async def event(
        self, envelope: dict[str, Any], *, retry_num: int | None = None, timestamp: int | None = None,
        secret: str | None = None,
    ) -> httpx.Response:
        """An Events API delivery; ``retry_num`` marks it as Slack's retry of an unacknowledged one."""
        extra = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"} if retry_num else {}
        body = json.dumps(envelope, separators=(",", ":")).encode()
        return await self.post(body, "application/json", timestamp=timestamp, secret=secret, extra=extra)

    async def interaction(self, payload: dict[str, Any]) -> httpx.Response:
        """Interactivity: form-encoded ``payload=<JSON>``."""
        body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
        return await self.post(body, "application/x-www-form-urlencoded")

    async def command(self, form: dict[str, str]) -> httpx.Response:
        """A slash command: the form fields, url-encoded."""
        return await self.post(urlencode(form).encode(), "application/x-www-form-urlencoded")


def copy_of(payload: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(payload)
