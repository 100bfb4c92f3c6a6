"""Signed outgoing webhooks for agents' side effects: one POST, HMAC-signed, retried until the receiver answers.

The body is JSON; ``X-Opsgate-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` with OPSGATE_WEBHOOK_SECRET;
``Idempotency-Key`` lets the receiver de-duplicate a retried call. Connection errors and 5xx are retried with
backoff, a 4xx is a refusal (ExecutionFailed at once).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import httpx

from bot.errors import ExecutionFailed

ATTEMPTS = 4


def signature(body: bytes, secret: str) -> str:
    """The X-Opsgate-Signature header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post_signed(
    http: httpx.AsyncClient, url: str, secret: str, payload: dict[str, Any], idempotency_key: str,
    *, attempts: int = ATTEMPTS, request_timeout: float = 30.0,
) -> str:
    """POST ``payload``; the receiver's answer (at most 500 characters) or ExecutionFailed saying why not."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "X-Opsgate-Signature": signature(body, secret),
               "Idempotency-Key": idempotency_key}
    error = ""
    for attempt in range(attempts):
        try:
            response = await http.post(url, content=body, headers=headers, timeout=request_timeout)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 300:
                return response.text.strip()[:500] or f"HTTP {response.status_code}"
            if response.status_code < 500:
                raise ExecutionFailed(f"webhook refused the request: HTTP {response.status_code} "
                                      f"{response.text[:200]}")
            error = f"HTTP {response.status_code}"
        if attempt + 1 < attempts:
            await asyncio.sleep(0.5 * 2 ** attempt)
    raise ExecutionFailed(f"webhook unreachable after {attempts} attempts ({error})")
