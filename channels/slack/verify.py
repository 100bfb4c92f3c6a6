"""Verify a request to /slack/events on its raw bytes, before anything parses them.

Headers first (a fresh ``X-Slack-Request-Timestamp`` and a ``v0=`` signature, else 401 without reading the body),
then the body read up to ``MAX_BODY_BYTES`` (413 beyond), then the HMAC-SHA256 of ``v0:{timestamp}:{body}``
under the signing secret, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

MAX_BODY_BYTES = 1024 * 1024
MAX_AGE_SECONDS = 300  # Slack: refuse requests whose timestamp is more than five minutes from now
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v0=[0-9a-f]{64}$")


class Rejected(Exception):
    """A request refused before parsing; ``status`` is the HTTP answer (401 or 413)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Verified:
    """A request whose bytes Slack signed, within the time window."""

    timestamp: str
    body: bytes


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``v0=`` signature Slack computes for these bytes."""
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return f"v0={digest}"


async def verify(
    headers: Mapping[str, str], chunks: AsyncIterator[bytes], secret: str, *,
    now: float | None = None, limit: int = MAX_BODY_BYTES,
) -> Verified:
    """Headers, then the bounded body, then the HMAC; Rejected(401/413) at the first problem.

    ``headers`` must look names up case-insensitively (starlette's Headers do).
    """
    timestamp = headers.get("x-slack-request-timestamp", "")
    sent = headers.get("x-slack-signature", "")
    if not _TIMESTAMP.match(timestamp) or not _SIGNATURE.match(sent):
        raise Rejected(401, "missing or malformed signature")
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_AGE_SECONDS:
        raise Rejected(401, "stale timestamp")
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Rejected(413, f"body over {limit} bytes")
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise Rejected(413, f"body over {limit} bytes")
    if not hmac.compare_digest(signature(secret, timestamp, bytes(body)), sent):
        raise Rejected(401, "bad signature")
    return Verified(timestamp=timestamp, body=bytes(body))
