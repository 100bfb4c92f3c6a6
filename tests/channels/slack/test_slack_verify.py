"""The verification in front of /slack/events: headers first, a bounded read, then the HMAC (no HTTP here)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable

import pytest
from slack_sdk.signature import SignatureVerifier
from starlette.datastructures import Headers

from channels.slack.verify import MAX_BODY_BYTES, Rejected, request_key, signature, verify
from tests.channels.slack.slack_requests import SIGNING_SECRET

NOW = 1_796_000_000


async def stream(chunks: Iterable[bytes], read: list[int] | None = None) -> AsyncIterator[bytes]:
    """The body as the server hands it over; ``read`` counts the bytes actually pulled."""
    for chunk in chunks:
        if read is not None:
            read.append(len(chunk))
        yield chunk


def signed(body: bytes, timestamp: int = NOW, secret: str = SIGNING_SECRET, **extra: str) -> Headers:
    return Headers({"x-slack-request-timestamp": str(timestamp),
                    "x-slack-signature": signature(secret, str(timestamp), body), **extra})


def test_our_signature_is_slacks() -> None:
    """The v0 signature matches the one the Slack SDK computes for the same bytes."""
    body = b'{"type":"event_callback"}'
    expected = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=str(NOW), body=body.decode())
    assert signature(SIGNING_SECRET, str(NOW), body) == expected


async def test_a_signed_fresh_request_is_verified_with_its_replay_key() -> None:
    """Good signature, fresh timestamp: the bytes come back with a key naming this exact request."""
    body = b"payload=%7B%7D"
    verified = await verify(signed(body), stream([body[:5], body[5:]]), SIGNING_SECRET, now=NOW + 299)
    assert verified.body == body
    assert verified.key == request_key(str(NOW), body) and len(verified.key) == 64
    assert verified.key != request_key(str(NOW + 1), body) != request_key(str(NOW), body + b" ")


@pytest.mark.parametrize("headers", [
    {},
    {"x-slack-request-timestamp": str(NOW)},
    {"x-slack-request-timestamp": "yesterday", "x-slack-signature": "v0=" + "0" * 64},
    {"x-slack-request-timestamp": str(NOW), "x-slack-signature": "v1=" + "0" * 64},
    {"x-slack-request-timestamp": str(NOW), "x-slack-signature": "v0=" + "Z" * 64},
    {"x-slack-request-timestamp": "9" * 40, "x-slack-signature": "v0=" + "0" * 64},
])
async def test_missing_or_malformed_headers_are_401_before_any_byte_is_read(headers: dict[str, str]) -> None:
    """Without a well-formed timestamp and v0 signature nothing of the body is read."""
    read: list[int] = []
    with pytest.raises(Rejected) as refused:
        await verify(Headers(headers), stream([b"x" * 1000], read), SIGNING_SECRET, now=NOW)
    assert refused.value.status == 401 and read == []


@pytest.mark.parametrize("age", [-301, 301, 10_000_000])
async def test_a_stale_or_future_timestamp_is_401(age: int) -> None:
    """More than five minutes away from now, in either direction: refused, however well signed."""
    body = b"{}"
    with pytest.raises(Rejected) as refused:
        await verify(signed(body, NOW - age), stream([body]), SIGNING_SECRET, now=NOW)
    assert (refused.value.status, refused.value.reason) == (401, "stale timestamp")


@pytest.mark.parametrize("problem", ["other secret", "body changed", "timestamp changed"])
async def test_a_bad_signature_is_401(problem: str) -> None:
    """A signature over other bytes, or under another secret, is refused."""
    body = b'{"type":"event_callback"}'
    headers = signed(body, secret="not-the-secret") if problem == "other secret" else signed(body)
    if problem == "timestamp changed":
        headers = Headers({**headers, "x-slack-request-timestamp": str(NOW + 1)})
    sent = body + b" " if problem == "body changed" else body
    with pytest.raises(Rejected) as refused:
        await verify(headers, stream([sent]), SIGNING_SECRET, now=NOW)
    assert (refused.value.status, refused.value.reason) == (401, "bad signature")


async def test_a_declared_length_over_the_limit_is_413_without_reading() -> None:
    """Content-Length above the limit: refused from the headers."""
    read: list[int] = []
    headers = signed(b"", **{"content-length": str(MAX_BODY_BYTES + 1)})
    with pytest.raises(Rejected) as refused:
        await verify(headers, stream([b"x"], read), SIGNING_SECRET, now=NOW)
    assert refused.value.status == 413 and read == []


async def test_reading_stops_at_the_limit_whatever_the_sender_declared() -> None:
    """A chunked or lying upload is cut off at the first chunk past the limit: the rest is never pulled."""
    read: list[int] = []
    chunk = b"x" * 65536
    chunks = (chunk for _ in range(10_000))  # 655 MB if it were all read
    with pytest.raises(Rejected) as refused:
        await verify(signed(b"", **{"content-length": "10"}), stream(chunks, read), SIGNING_SECRET, now=NOW)
    assert refused.value.status == 413
    assert sum(read) <= MAX_BODY_BYTES + len(chunk)


async def test_a_body_of_exactly_the_limit_is_verified() -> None:
    """The limit itself is allowed."""
    body = b"x" * MAX_BODY_BYTES
    verified = await verify(signed(body), stream([body]), SIGNING_SECRET, now=NOW)
    assert len(verified.body) == MAX_BODY_BYTES


async def test_the_clock_defaults_to_now() -> None:
    """Without an explicit ``now`` the real clock is used."""
    body = b"{}"
    verified = await verify(signed(body, int(time.time())), stream([body]), SIGNING_SECRET)
    assert verified.body == body
