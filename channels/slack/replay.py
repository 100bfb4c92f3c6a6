"""The replay guard: a signed Slack request is handled once, however often its bytes are sent again.

A captured request verifies again for as long as its timestamp is fresh (5 minutes), so signature checking
alone cannot stop a replay. Each slash command, click and dialog submission is recorded as a ``slack-request``
ref keyed by ``verify.request_key`` (a hash of its timestamp and body): in the same transaction as what it
causes (``start_thread``/``decide``/``record_refusal`` take ``refs``), or on its own (``claim``) when it causes
nothing durable. A known key means "already handled". The refs are kept like the event-id refs are; a key is
only meaningful within the signature window, after which the request cannot verify anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.store import Ref, Store

REQUEST_REF = "slack-request"


def request_refs(key: str | None) -> list[Ref]:
    """The replay-guard ref of a verified request (none in Socket Mode, where nothing is signed)."""
    return [Ref(channel=REQUEST_REF, key=key)] if key else []


async def seen(store: Store, key: str | None) -> bool:
    """Whether the request with this key was already handled."""
    return key is not None and await store.get_ref(REQUEST_REF, key) is not None


async def claim(store: Store, refs: Sequence[Ref]) -> bool:
    """Record ``refs`` for a request that causes nothing durable; False when they were known (a replay)."""
    fresh = True
    for ref in refs:
        fresh = await store.put_ref(ref) and fresh
    return fresh
