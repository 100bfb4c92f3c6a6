"""A failing Slack event: which delivery it is, when it is quarantined, and what happens when even that fails."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from channels.slack.poison import POISON_ATTEMPTS, attempt, event_failed
from storage import SqlStore
from tests.channels.slack.slack_requests import mention
from tests.support.databases import move_table_away

ENVELOPE = mention("deploy api", ts="1732270000.000100", event_id="EvPoison")


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, 1), ({"x-slack-retry-num": ["1"]}, 2), ({"x-slack-retry-num": ["3"]}, 4),
    ({"x-slack-retry-num": ["three"]}, 1), ({"x-slack-retry-num": ["99999"]}, 1), ({"x-slack-retry-num": []}, 1),
])
def test_delivery_number_comes_from_slacks_retry_header(headers: dict[str, list[str]], expected: int) -> None:
    """1 + X-Slack-Retry-Num; anything unreadable counts as a first delivery (never quarantined early)."""
    assert attempt(headers) == expected


async def test_only_the_last_delivery_is_quarantined(store: SqlStore) -> None:
    """Deliveries before Slack's last are left to the retry; the last is quarantined once, with its payload."""
    failure = RuntimeError("database is down")
    for delivery in range(1, POISON_ATTEMPTS):
        assert not await event_failed(store, "EvPoison", ENVELOPE, failure, delivery)
    assert await store.list_quarantine() == []
    with capture_logs() as logs:
        assert await event_failed(store, "EvPoison", ENVELOPE, failure, POISON_ATTEMPTS)
    [item] = await store.list_quarantine()
    assert (item.channel, item.key, item.attempts) == ("slack", "EvPoison", POISON_ATTEMPTS)
    assert "RuntimeError on delivery 4" in item.reason and '"event_id": "EvPoison"' in (item.detail or "")
    [failed] = [r for r in logs if r["event"] == "slack_event_failed"]
    assert failed["error_id"] in item.reason
    assert await event_failed(store, "EvPoison", ENVELOPE, failure, POISON_ATTEMPTS)  # again: still handled
    assert len(await store.list_quarantine()) == 1


async def test_when_even_the_quarantine_fails_the_event_goes_to_the_log(store: SqlStore) -> None:
    """A store that refuses the quarantine write: not acked (False), and the whole envelope is logged as lost."""
    # The table is renamed away, so the insert fails inside the database. (A database that cannot even be opened
    # fails the same way, but aiosqlite then leaves a stop request for its thread that may outlive the test's loop.)
    await move_table_away(store.engine, "quarantine")
    with capture_logs() as logs:
        handled = await event_failed(store, "EvPoison", ENVELOPE, RuntimeError("down"), POISON_ATTEMPTS)
    assert not handled
    [lost] = [r for r in logs if r["event"] == "slack_event_lost"]
    assert '"event_id": "EvPoison"' in lost["envelope"] and lost["error_id"]
    assert "quarantine" in lost["error"]
