"""`opsgate quarantine list` as a subprocess: what is set aside, newest first, as lines or JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.store import QuarantineItem
from storage import SqlStore, upgrade
from tests.support.api_client import run_cli


async def test_quarantine_list_prints_items_newest_first_and_as_json(sqlite_database_url: str) -> None:
    """Empty says so; with items each line has time, channel, key, attempts and reason; --json has the detail."""
    env = {"DATABASE_URL": sqlite_database_url}
    await upgrade(sqlite_database_url)
    code, output = await run_cli("quarantine", "list", env=env)
    assert code == 0 and output.strip().endswith("nothing is in quarantine"), output

    store = SqlStore.from_url(sqlite_database_url)
    start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    try:
        await store.quarantine(QuarantineItem(channel="email", key="INBOX:1:7", reason="unparseable mail",
                                              detail="no From header", at=start))
        await store.quarantine(QuarantineItem(channel="slack", key="outbox:3", reason="outbox delivery: refused",
                                              attempts=2, at=start + timedelta(minutes=5)))
    finally:
        await store.close()

    code, output = await run_cli("quarantine", "list", env=env)
    assert code == 0, output
    lines = [line for line in output.splitlines() if line.startswith("2026-")]
    assert lines == [
        "2026-11-30 09:05:00  slack    outbox:3  x2  outbox delivery: refused",
        "2026-11-30 09:00:00  email    INBOX:1:7  x1  unparseable mail",
    ]
    code, output = await run_cli("quarantine", "list", "--json", "--limit", "1", env=env)
    assert code == 0, output
    [record] = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert record["key"] == "outbox:3" and record["detail"] is None
