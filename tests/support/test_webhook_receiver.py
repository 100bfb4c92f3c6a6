"""The webhook receiver verifies HMAC signatures and records every attempt."""

from __future__ import annotations

import json

import httpx

from tests.support.webhook_receiver import WebhookReceiver, sign


async def post(url: str, payload: object, signature: str | None) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Opsgate-Signature"] = signature
    async with httpx.AsyncClient() as http:
        return await http.post(url, content=body, headers=headers)


async def test_signed_call_is_accepted_and_recorded() -> None:
    """A correctly signed POST gets 200 and is recorded with its JSON body and headers."""
    payload = {"action": "deploy", "service": "api"}
    with WebhookReceiver("whsecret") as hook:
        response = await post(hook.url, payload, sign("whsecret", json.dumps(payload).encode()))
        calls = await hook.wait_for_calls(1, timeout=1)
    assert response.status_code == 200
    assert calls[0].json == payload and calls[0].signature_valid and calls[0].accepted
    assert calls[0].path == "/hook" and calls[0].headers["x-opsgate-signature"].startswith("sha256=")


async def test_bad_or_missing_signature_is_401_and_rejected() -> None:
    """A wrong secret or no signature header is refused with 401 and recorded as rejected."""
    with WebhookReceiver("whsecret") as hook:
        wrong = await post(hook.url, {"a": 1}, sign("other", b'{"a": 1}'))
        missing = await post(hook.url, {"a": 1}, None)
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert len(hook.rejected) == 2 and hook.accepted == []


async def test_fail_first_then_succeed_counts_every_attempt() -> None:
    """fail_first=N answers 500 to the first N signed calls; nothing is de-duplicated."""
    body = b'{"id": "same"}'
    with WebhookReceiver("whsecret", fail_first=2) as hook:
        async with httpx.AsyncClient() as http:
            headers = {"X-Opsgate-Signature": sign("whsecret", body)}
            statuses = [(await http.post(hook.url, content=body, headers=headers)).status_code for _ in "123"]
        await hook.wait_for_calls(1, timeout=1, accepted=True)
    assert statuses == [500, 500, 200]
    assert len(hook.calls) == 3 and len(hook.accepted) == 1
