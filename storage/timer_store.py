"""Timer store methods: claiming due timers and closing them (hot, straight to the driver), listing (cold).

Scheduling, cancelling and firing happen inside a thread's append (storage/sqlite_store.py, storage/pg_store.py),
so a timer and the events that cause or consume it are one transaction. Claims lease timers like outbox rows:
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the single writer on SQLite.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import TimerRow, TimerState
from storage import hot_sql as q
from storage.pg_store import PgHot
from storage.rows import timer_row
from storage.schema import timers
from storage.sqlite_store import SqliteHot

_SQLITE = {name: q.sqlite(q.ALL[name]) for name in
           ("PROBE_TIMERS", "CLAIM_TIMERS", "FIRE_TIMER", "TIMER_RETRY", "TIMER_FAILED", "NEXT_TIMER")}
_PG = {name: q.postgres(q.ALL[name]) for name in _SQLITE}


def _count(status: Any) -> int:
    return int(str(status).rsplit(" ", 1)[-1])


class TimerStore:
    """Store methods for timers; mixed into SqlStore, which provides the engines and the hot store."""

    hot: SqliteHot | PgHot
    reader: AsyncEngine

    async def claim_timers(self, owner: str, limit: int, lease_seconds: float) -> list[TimerRow]:
        now = time.time()
        params = (now, limit, owner, now + lease_seconds)
        hot = self.hot
        if isinstance(hot, SqliteHot):
            def probe(conn: sqlite3.Connection) -> bool:
                return conn.execute(_SQLITE["PROBE_TIMERS"], (now, 1)).fetchone() is not None

            if not await hot.readers.run(probe):  # most polls find nothing: a read, not a write transaction
                return []
            rows = await hot.writer.run(lambda conn: conn.execute(_SQLITE["CLAIM_TIMERS"], params).fetchall())
        else:
            rows = await hot.writer.run(lambda conn: conn.fetch(_PG["CLAIM_TIMERS"], *params))
        return sorted((timer_row(*row) for row in rows), key=lambda t: (t.due_at, t.id))

    async def timer_done(self, timer_id: int) -> bool:
        return await self._update("FIRE_TIMER", timer_id) == 1

    async def timer_failed(self, timer_id: int, error: str) -> None:
        await self._update("TIMER_FAILED", timer_id, time.time(), error[:2000])

    async def timer_retry(self, timer_id: int, delay: float, error: str) -> None:
        await self._update("TIMER_RETRY", timer_id, time.time() + delay, error[:2000])

    async def next_timer_due(self) -> float | None:
        now = time.time()
        hot = self.hot
        if isinstance(hot, SqliteHot):
            row = await hot.readers.run(lambda conn: conn.execute(_SQLITE["NEXT_TIMER"], (now,)).fetchone())
            value = row[0] if row else None
        else:
            value = await hot.writer.read(lambda conn: conn.fetchval(_PG["NEXT_TIMER"], now))
        return None if value is None else float(value)

    async def list_timers(self, thread_id: str) -> list[TimerState]:
        query = select(timers).where(timers.c.thread_id == thread_id).order_by(timers.c.due_at, timers.c.id)
        async with self.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [TimerState(
            id=r.id, thread_id=r.thread_id, kind=r.kind, key=r.key, due_at=_ts(r.due_at),
            payload=json.loads(r.payload), attempts=r.attempts, status=r.status,
            fired_at=_ts(r.fired_at) if r.fired_at is not None else None, last_error=r.last_error,
        ) for r in rows]

    async def _update(self, name: str, *params: Any) -> int:
        hot = self.hot
        if isinstance(hot, SqliteHot):
            sql = _SQLITE[name]
            return int(await hot.writer.run(lambda conn: conn.execute(sql, params).rowcount))
        pg_sql = _PG[name]

        async def op(conn: asyncpg.Connection) -> int:
            return _count(await conn.execute(pg_sql, *params))

        return await hot.writer.run(op)


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)
