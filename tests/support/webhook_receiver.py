"""WebhookReceiver: a real HTTP server that records signed POSTs (the deploy executor's webhook target).

The signature is ``X-Opsgate-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>``; a bad or missing one
is answered 401 and recorded as rejected. Nothing is de-duplicated: every attempt is a call, so tests can
count retries.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.servers import BackgroundServer

SIGNATURE_HEADER = "x-opsgate-signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header value opsgate must send for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookCall:
    """One POST as received and how it was answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    status: int
    signature_valid: bool
    received_at: float = field(default_factory=time.time)

    @property
    def accepted(self) -> bool:
        """True when the call was answered with a 2xx."""
        return 200 <= self.status < 300


class WebhookReceiver:
    """Records every POST to any path, verifies signatures when ``secret`` is set, can fail the first N."""

    def __init__(
        self, secret: str | None, *, fail_first: int = 0, fail_status: int = 500,
        reply: Any = None,
    ) -> None:
        self.secret = secret
        self.fail_first = fail_first  # the first N correctly signed calls get ``fail_status``
        self.fail_status = fail_status
        self.reply = reply if reply is not None else {"ok": True}
        self.calls: list[WebhookCall] = []
        self._lock = threading.Lock()
        self._failed = 0
        app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])
        self._server = BackgroundServer(app, name="webhook-receiver")

    @property
    def url(self) -> str:
        """URL to configure as the webhook target (path /hook)."""
        return f"{self._server.url}/hook"

    @property
    def accepted(self) -> list[WebhookCall]:
        """Calls answered with a 2xx."""
        return [call for call in self.calls if call.accepted]

    @property
    def rejected(self) -> list[WebhookCall]:
        """Calls refused for a missing or bad signature."""
        return [call for call in self.calls if not call.signature_valid]

    def start(self) -> WebhookReceiver:
        """Start serving; returns self once the socket accepts."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and join the server thread."""
        self._server.stop()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def wait_for_calls(
        self, n: int, timeout: float = 10.0, *, accepted: bool = False  # noqa: ASYNC109
    ) -> list[WebhookCall]:
        """Wait for ``n`` calls (only 2xx-answered ones with ``accepted=True``) or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while len(calls := self.accepted if accepted else list(self.calls)) < n:
            if time.monotonic() > deadline:
                kind = "accepted " if accepted else ""
                raise TimeoutError(f"expected {n} {kind}webhook calls within {timeout}s, got {len(calls)}")
            await asyncio.sleep(0.02)
        return calls

    async def _receive(self, request: Request) -> JSONResponse:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        valid = self.secret is None or hmac.compare_digest(
            headers.get(SIGNATURE_HEADER, ""), sign(self.secret, body)
        )
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        status, answer = 200, self.reply
        if not valid:
            status, answer = 401, {"error": "bad signature"}
        else:
            with self._lock:
                failing = self._failed < self.fail_first
                self._failed += failing
            if failing:
                status, answer = self.fail_status, {"error": "scripted failure"}
        self.calls.append(WebhookCall(request.url.path, headers, body, payload, status, valid))
        return JSONResponse(answer, status_code=status)
