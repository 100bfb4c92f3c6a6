"""A Slack event whose handling fails: ask Slack to retry, and quarantine it when its retries are used up.

Slack re-sends an event that was not acknowledged with a 2xx (``X-Slack-Retry-Num`` 1, 2, 3; then it gives
up); over Socket Mode the same happens to an envelope that is not acknowledged, and bolt mirrors its
``retry_attempt`` into the same header. A failure a retry can fix (the database briefly down) therefore answers
503 (Socket Mode: no acknowledgement) and lets Slack retry. On the
last delivery, ``POISON_ATTEMPTS``, the event is quarantined instead — recorded with its payload, logged,
visible in the web inbox — and acknowledged, so it is never silently lost and never retried forever. If even
the quarantine cannot be written, the whole envelope goes to the log at error level.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from bot.store import QuarantineItem, Store

log = structlog.get_logger("opsgate.slack")

CHANNEL = "slack"
POISON_ATTEMPTS = 4  # Slack's first delivery and its three retries
MAX_DETAIL = 10_000  # characters of the envelope kept with the quarantine record


def attempt(headers: Mapping[str, Sequence[str]]) -> int:
    """Which delivery of the event this is: 1, then 1 + ``X-Slack-Retry-Num``."""
    raw = (headers.get("x-slack-retry-num") or ["0"])[0]
    return 1 + int(raw) if raw.isdigit() and len(raw) < 4 else 1


async def event_failed(
    store: Store, event_id: str, envelope: dict[str, Any], exc: Exception, delivery: int,
) -> bool:
    """Log the failure; on the last delivery quarantine the event. True when it is handled (ack it)."""
    error_id = secrets.token_hex(6)
    reason = f"{type(exc).__name__} on delivery {delivery}"
    log.error("slack_event_failed", event_id=event_id, delivery=delivery, error_id=error_id,
              error=f"{type(exc).__name__}: {str(exc)[:500]}", exc_info=exc)
    if delivery < POISON_ATTEMPTS:
        return False
    detail = json.dumps(envelope, ensure_ascii=False)[:MAX_DETAIL]
    item = QuarantineItem(channel=CHANNEL, key=event_id, reason=f"{reason} (error id {error_id})",
                          detail=detail, attempts=delivery)
    try:
        await store.quarantine(item)
    except Exception as failure:  # the store is down for good: the log is the last place the event can live
        log.error("slack_event_lost", event_id=event_id, error_id=error_id, envelope=detail,
                  error=f"{type(failure).__name__}: {str(failure)[:500]}")
        return False
    return True  # the store logged "quarantined"; a second delivery of a quarantined event finds it there
