"""The Slack Web API client: base URL from settings, bounded retries on 429, 5xx and connection errors.

A short Retry-After is waited out in place; a long one is handed back to the outbox (DeliveryRetry), so a
rate-limited channel never holds a dispatcher slot for minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings

SLACK_API_URL = "https://slack.com/api/"
MAX_INLINE_WAIT = 5.0  # seconds of Retry-After worth waiting inside one delivery attempt


def retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """The Retry-After header (seconds) of a Slack response, if any and readable."""
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


class BoundedRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """Retry a 429 in place only when Slack asks for a short wait; longer waits go back to the outbox."""

    def __init__(self, max_retry_count: int = 2, max_wait: float = MAX_INLINE_WAIT) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    async def _can_retry_async(
        self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        if not any(k.lower() == "retry-after" for k in response.headers):
            return True  # the base handler then waits about a second
        wait = retry_after(response.headers)
        # The base handler reads the header with int(): only whole seconds are safe to hand it.
        return wait is not None and wait == int(wait) and wait <= self.max_wait


def api_url(settings: Settings) -> str:
    """SLACK_API_URL with the trailing "/" that slack_sdk's urljoin needs (else a path is cut off)."""
    url = settings.slack_api_url or SLACK_API_URL
    return url if url.endswith("/") else url + "/"


def retry_handlers() -> list[AsyncRetryHandler]:
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        BoundedRateLimitRetryHandler(),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ]


def web_client(settings: Settings, token: str | None = None, *, retries: bool = True) -> AsyncWebClient:
    """An AsyncWebClient for the bot token (or ``token``, e.g. the app-level token for Socket Mode).

    ``retries=False`` for calls made while a person's request waits (user lookups): one quick try only.
    """
    return AsyncWebClient(
        token=token or settings.slack_bot_token,
        base_url=api_url(settings),
        timeout=15,
        retry_handlers=retry_handlers() if retries else [],
    )
