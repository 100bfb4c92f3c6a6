"""Verify a request to /slack/events before anything parses it: headers, then a bounded read, then the HMAC.

Order matters for hostile input. A request without a well-formed, fresh ``X-Slack-Request-Timestamp`` and a
``v0=`` signature is refused from its headers alone, without reading a byte of the body. The body is then read
as a stream and reading stops at ``MAX_BODY_BYTES`` (413), so an upload of any size costs at most that much
memory. Only then is the signature (HMAC-SHA256 of ``v0:{timestamp}:{raw body}`` under the signing secret)
compared, in constant time; JSON or form parsing happens afterwards, in bolt, on verified bytes only.

``MAX_BODY_BYTES`` is 1 MiB. Slack's own payloads are small: a message event carries at most 40,000
characters of text (twice: ``text`` and its ``rich_text`` block), under 400 KB even with every character
``\\uXXXX``-escaped; clicks and modal submissions echo views we built, which the limits module keeps far below
that (an edit modal shows at most ``MAX_EDIT_FIELDS`` inputs: its largest possible submission, every input full
of 3-byte characters, URL-encoded, is about 550 KB). Anything bigger is not from Slack.

``request_key`` names one signed request (timestamp + body) for replay protection: the same bytes re-sent
within the 5-minute window verify again, so the handlers record the key with what the request caused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

MAX_BODY_BYTES = 1024 * 1024
MAX_AGE_SECONDS = 300  # Slack: reject requests whose timestamp is more than five minutes away from now
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

    @property
    def key(self) -> str:
        """The request's replay key: the same for the same signed bytes, different for every new request."""
        return request_key(self.timestamp, self.body)


def request_key(timestamp: str, body: bytes) -> str:
    """SHA-256 of ``{timestamp}:{body}`` as hex (64 characters, fits a ref key)."""
    return hashlib.sha256(timestamp.encode() + b":" + body).hexdigest()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``v0=`` signature Slack computes for these bytes."""
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def signed(secret: str, timestamp: str, body: bytes, sent: str) -> bool:
    """Whether ``sent`` is Slack's signature of these bytes (compared in constant time)."""
    return hmac.compare_digest(signature(secret, timestamp, body), sent)


def check_headers(headers: Mapping[str, str], *, now: float, max_age: float = MAX_AGE_SECONDS) -> tuple[str, str]:
    """(timestamp, signature) when both are well formed and the timestamp is fresh; else Rejected(401)."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    sent = headers.get("x-slack-signature", "")
    if not _TIMESTAMP.match(timestamp) or not _SIGNATURE.match(sent):
        raise Rejected(401, "missing or malformed signature")
    if abs(now - int(timestamp)) > max_age:
        raise Rejected(401, "stale timestamp")
    return timestamp, sent


def check_length(headers: Mapping[str, str], limit: int = MAX_BODY_BYTES) -> None:
    """Rejected(413) when the declared Content-Length is over the limit (a lie is caught while reading)."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Rejected(413, f"body over {limit} bytes")


async def read_limited(chunks: AsyncIterator[bytes], limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, or Rejected(413) as soon as more than ``limit`` bytes arrived (nothing more is read)."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise Rejected(413, f"body over {limit} bytes")
    return bytes(body)


async def verify(
    headers: Mapping[str, str], chunks: AsyncIterator[bytes], secret: str, *,
    now: float | None = None, limit: int = MAX_BODY_BYTES,
) -> Verified:
    """Headers, then the bounded body, then the HMAC; Rejected(401/413) at the first problem.

    ``headers`` must look names up case-insensitively (starlette's Headers do).
    """
    timestamp, sent = check_headers(headers, now=time.time() if now is None else now)
    check_length(headers, limit)
    body = await read_limited(chunks, limit)
    if not signed(secret, timestamp, body, sent):
        raise Rejected(401, "bad signature")
    return Verified(timestamp=timestamp, body=body)
