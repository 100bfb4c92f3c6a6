"""HTTP calls to a deploy system, shared by the GitHub Actions and Argo CD backends.

Reads are retried on connection errors, timeouts and 5xx. A call with a side effect is retried only when the
request surely never arrived (the connection was refused); any other doubt is the caller's to resolve by looking
for the effect, because sending it twice could deploy twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from bot.errors import ExecutionFailed

_ATTEMPTS = 4


class Ambiguous(Exception):
    """A request with a side effect may or may not have been carried out (timeout, dropped connection, 5xx)."""


class Refused(ExecutionFailed):
    """The system answered a 4xx: nothing was done; ``detail`` is its message."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


def describe(response: httpx.Response) -> str:
    """``HTTP 422 <the service's message>``, short."""
    try:
        body = response.json()
        message = body.get("message") or body.get("error") if isinstance(body, dict) else None
    except ValueError:
        message = None
    text = str(message or response.text).strip().replace("\n", " ")[:300]
    return f"HTTP {response.status_code} {text}".strip()


async def read(http: httpx.AsyncClient, system: str, url: str, *, headers: dict[str, str],
               params: dict[str, Any] | None = None) -> Any:
    """GET JSON; retry what may pass on its own, fail at once on a 4xx with the service's message."""
    error = ""
    for attempt in range(_ATTEMPTS):
        try:
            response = await http.get(url, headers=headers, params=params, timeout=30)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 300:
                return response.json()
            if response.status_code < 500 and response.status_code != 429:
                raise ExecutionFailed(f"{system} refused GET {httpx.URL(url).path}: {describe(response)}")
            error = describe(response)
        await asyncio.sleep(0.5 * 2 ** attempt)
    raise ExecutionFailed(f"{system} unreachable after {_ATTEMPTS} attempts ({error})")


async def send(http: httpx.AsyncClient, system: str, method: str, url: str, *, headers: dict[str, str],
               body: dict[str, Any]) -> httpx.Response:
    """A call with a side effect: a 2xx response, Refused on a 4xx, Ambiguous when it may have happened."""
    error = ""
    for attempt in range(_ATTEMPTS):
        try:
            response = await http.request(method, url, headers=headers, json=body, timeout=30)
        except httpx.ConnectError as exc:  # nothing was sent: safe to try again
            error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.5 * 2 ** attempt)
            continue
        except httpx.HTTPError as exc:
            raise Ambiguous(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code < 300:
            return response
        if response.status_code >= 500:
            raise Ambiguous(describe(response))
        detail = describe(response)
        raise Refused(f"{system} refused {method} {httpx.URL(url).path}: {detail}", detail)
    raise ExecutionFailed(f"{system} unreachable after {_ATTEMPTS} attempts ({error}); nothing was sent")
