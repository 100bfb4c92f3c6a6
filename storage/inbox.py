"""The inbox: raw inbound deliveries (a Slack event's JSON) recorded before they are acknowledged.

A channel acks a delivery as soon as its raw bytes are committed here (group commit, one short transaction) and
turns it into a thread in the background; what a crash interrupts is still here on start. Rows are claimed with
a lease like outbox rows and deleted once handled; handling is idempotent (the channel's event-id refs), so a
row handled twice (a crash between the thread's commit and the delete) changes nothing the second time.
"""

from __future__ import annotations

import sqlite3
import time

import asyncpg

from bot.store import InboxItem
from storage import hot_sql as q
from storage.pg_store import PgHot
from storage.sqlite_store import SqliteHot

SQL = {
    "INBOX_PUT": (
        "INSERT INTO inbox (channel, key, body, received_at, next_attempt_at, attempts)"
        " VALUES ($1, $2, $3, $4, $4, 0) ON CONFLICT (channel, key) DO NOTHING"
    ),
    "INBOX_PROBE": "SELECT key FROM inbox WHERE channel = $1 AND next_attempt_at <= $2 LIMIT 1",
    "INBOX_CLAIM": (
        "UPDATE inbox SET next_attempt_at = $4, attempts = attempts + 1 WHERE channel = $1 AND key IN ("
        "SELECT key FROM inbox WHERE channel = $1 AND next_attempt_at <= $2 ORDER BY received_at LIMIT $3"
        + q.LOCKED + ") RETURNING key, body, attempts, received_at"
    ),
    "INBOX_DONE": "DELETE FROM inbox WHERE channel = $1 AND key = $2",
    "INBOX_RETRY": "UPDATE inbox SET next_attempt_at = $3 WHERE channel = $1 AND key = $2",
}
_SQLITE = {name: q.sqlite(sql) for name, sql in SQL.items()}
_PG = {name: q.postgres(sql) for name, sql in SQL.items()}


def _items(channel: str, rows: list[tuple[str, str, int, float]]) -> list[InboxItem]:
    items = [InboxItem(channel=channel, key=key, body=body, attempts=attempts - 1, received_at=received)
             for key, body, attempts, received in rows]
    return sorted(items, key=lambda item: item.received_at)


async def inbox_put(hot: SqliteHot | PgHot, channel: str, key: str, body: str) -> bool:
    """Record a delivery; False if one with this key is already waiting (a retry), and nothing is written."""
    params = (channel, key, body, time.time())
    if isinstance(hot, SqliteHot):
        return await hot.writer.run(lambda conn: conn.execute(_SQLITE["INBOX_PUT"], params).rowcount == 1)
    status = await hot.writer.run(lambda conn: conn.execute(_PG["INBOX_PUT"], *params), one_statement=True)
    return str(status).endswith(" 1")


async def inbox_claim(hot: SqliteHot | PgHot, channel: str, limit: int, lease_seconds: float) -> list[InboxItem]:
    """Up to ``limit`` waiting deliveries, oldest first, hidden from other claimers for ``lease_seconds``."""
    now = time.time()
    params = (channel, now, limit, now + lease_seconds)
    if isinstance(hot, SqliteHot):
        def probe(conn: sqlite3.Connection) -> bool:
            return conn.execute(_SQLITE["INBOX_PROBE"], (channel, now)).fetchone() is not None

        if not await hot.readers.run(probe):
            return []
        rows = await hot.writer.run(lambda conn: conn.execute(_SQLITE["INBOX_CLAIM"], params).fetchall())
        return _items(channel, rows)

    async def claim(conn: asyncpg.Connection) -> list[tuple[str, str, int, float]]:
        return [tuple(row) for row in await conn.fetch(_PG["INBOX_CLAIM"], *params)]  # type: ignore[misc]

    return _items(channel, await hot.writer.run(claim, one_statement=True))


async def inbox_done(hot: SqliteHot | PgHot, channel: str, key: str) -> None:
    """Forget a handled delivery."""
    if isinstance(hot, SqliteHot):
        await hot.writer.run(lambda conn: conn.execute(_SQLITE["INBOX_DONE"], (channel, key)))
    else:
        await hot.writer.run(lambda conn: conn.execute(_PG["INBOX_DONE"], channel, key), one_statement=True)


async def inbox_retry(hot: SqliteHot | PgHot, channel: str, key: str, delay: float) -> None:
    """Hand a delivery whose handling failed back for another attempt in ``delay`` seconds (not at lease end)."""
    params = (channel, key, time.time() + delay)
    if isinstance(hot, SqliteHot):
        await hot.writer.run(lambda conn: conn.execute(_SQLITE["INBOX_RETRY"], params))
    else:
        await hot.writer.run(lambda conn: conn.execute(_PG["INBOX_RETRY"], *params), one_statement=True)
