"""The hot store operations on SQLite: each one a synchronous function, run by ``sqlite_threads``' writer or readers."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from bot.errors import Conflict, DuplicateRef, ThreadNotFound, TimerGone
from bot.events import Event
from bot.store import Lease, NewTimer, OutboxItem, OutboxRow, Ref, TimerChanges
from bot.thread import Thread, ThreadStatus
from storage import hot_sql as q
from storage.rows import (
    append_statement,
    event_params,
    insert_statement,
    make_thread,
    outbox_params,
    outbox_row,
    ref_data,
    ref_params,
    timer_params,
)
from storage.sqlite_threads import SqliteReaders, SqliteWriter

_SQL = {name: q.sqlite(sql) for name, sql in q.ALL.items()}


def _insert_refs(conn: sqlite3.Connection, items: Sequence[Ref], thread_id: str | None) -> None:
    """Refs go first in the transaction; a known key aborts the operation (its savepoint is rolled back)."""
    if not items:
        return
    try:
        conn.executemany(_SQL["INSERT_REF"], ref_params(items, thread_id))
    except sqlite3.IntegrityError:
        keys = ", ".join(f"{ref.channel}:{ref.key}" for ref in items)
        raise DuplicateRef(f"already recorded: one of {keys}") from None


def _insert_outbox(
    conn: sqlite3.Connection, items: Sequence[OutboxItem], thread_id: str | None, now: float
) -> None:
    if items:
        conn.executemany(_SQL["INSERT_OUTBOX"], outbox_params(items, thread_id, now))


def _fire_timer(conn: sqlite3.Connection, timers: TimerChanges | None) -> None:
    """First in the transaction: the timer this append fires must still be pending, else nothing is written."""
    if timers is not None and timers.fired is not None:
        if conn.execute(_SQL["FIRE_TIMER"], (timers.fired,)).rowcount != 1:
            raise TimerGone(f"timer {timers.fired} is no longer pending")


def _change_timers(
    conn: sqlite3.Connection, thread_id: str, schedule: Sequence[NewTimer], cancel: Sequence[str]
) -> None:
    for key in cancel:  # cancel first: a timer scheduled in the same append under the same key stays
        conn.execute(_SQL["CANCEL_TIMERS"], (thread_id, key))
    if schedule:
        conn.executemany(_SQL["INSERT_TIMER"], timer_params(schedule, thread_id))


def _insert_tail(
    conn: sqlite3.Connection, thread_id: str, new: Sequence[Event], first_seq: int,
    outbox: Sequence[OutboxItem], now: float,
) -> None:
    if new:
        conn.executemany(_SQL["INSERT_EVENT"], event_params(thread_id, new, first_seq))
    _insert_outbox(conn, outbox, thread_id, now)


class SqliteHot:
    """Threads, refs, leases, outbox, and state writes straight through sqlite3, with group commit."""

    def __init__(self, path: str) -> None:
        self.writer = SqliteWriter(path)
        self.readers = SqliteReaders(path)

    async def close(self) -> None:
        await self.writer.close()
        await self.readers.close()

    async def create_thread(
        self, thread: Thread, status: ThreadStatus, refs: Sequence[Ref], outbox: Sequence[OutboxItem],
        lease: Lease | None, timers: Sequence[NewTimer] = (),
    ) -> bool:
        now = time.time()
        sql, params, leased = insert_statement(_SQL, thread, status, lease, now)

        def op(conn: sqlite3.Connection) -> None:
            _insert_refs(conn, refs, thread.id)
            conn.execute(sql, params)
            _insert_tail(conn, thread.id, thread.events, 1, outbox, now)
            _change_timers(conn, thread.id, timers, ())

        await self.writer.run(op)
        return leased

    async def load_thread(self, thread_id: str) -> Thread | None:
        def op(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(_SQL["LOAD_THREAD"], (thread_id,)).fetchall()

        return make_thread(thread_id, await self.readers.run(op))

    async def thread_seq(self, thread_id: str) -> int | None:
        def op(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(_SQL["THREAD_SEQ"], (thread_id,)).fetchone()
            return None if row is None else int(row[0])

        return await self.readers.run(op)

    async def append(
        self, thread_id: str, events: Sequence[Event], expected_seq: int, status: ThreadStatus,
        agent: str | None, refs: Sequence[Ref], outbox: Sequence[OutboxItem], lease: Lease | None,
        timers: TimerChanges | None = None, outcome: str | None = None,
    ) -> bool:
        now = time.time()
        sql, params, leasing = append_statement(
            _SQL, thread_id, len(events), expected_seq, status, agent, lease, now, outcome)

        def op(conn: sqlite3.Connection) -> bool:
            _fire_timer(conn, timers)
            cursor = conn.execute(sql, params)
            if leasing:
                row = cursor.fetchone()
                changed, held = row is not None, (row[0], row[1]) if row else None
            else:
                changed, held = cursor.rowcount == 1, None
            if not changed:
                found = conn.execute(_SQL["THREAD_SEQ"], (thread_id,)).fetchone()
                if found is None:
                    raise ThreadNotFound(thread_id)
                raise Conflict(f"thread {thread_id} changed (seq {found[0]}, expected {expected_seq})")
            _insert_refs(conn, refs, thread_id)
            _insert_tail(conn, thread_id, events, expected_seq + 1, outbox, now)
            if timers:
                _change_timers(conn, thread_id, timers.schedule, timers.cancel)
            return leasing and held == (params[6], params[7])  # a lease this append took, not one held before

        return await self.writer.run(op)

    # --- leases ---------------------------------------------------------------------------------------------

    async def claim_threads(self, owner: str, lease_seconds: float, limit: int) -> list[str]:
        now = time.time()

        def probe(conn: sqlite3.Connection) -> bool:
            return conn.execute(_SQL["PROBE_RUNNABLE"], (now,)).fetchone() is not None

        # Most claims find nothing: a read answers those without a write transaction.
        if not await self.readers.run(probe):
            return []

        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(_SQL["CLAIM_ANY"], (now, owner, now + lease_seconds, limit)).fetchall()
            return [row[0] for row in sorted(rows, key=lambda row: row[1])]

        return await self.writer.run(op)

    async def claim_one(self, thread_id: str, owner: str, lease_seconds: float) -> int | None:
        now = time.time()

        def op(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(_SQL["CLAIM_ONE"], (thread_id, owner, now + lease_seconds, now)).fetchone()
            return int(row[0]) if row else None

        return await self.writer.run(op)

    async def release_thread(self, thread_id: str, owner: str, retry_in: float | None) -> None:
        params: tuple[Any, ...]
        if retry_in is None:
            sql, params = _SQL["RELEASE"], (thread_id, owner)
        else:
            sql, params = _SQL["RELEASE_RETRY"], (thread_id, owner, time.time() + retry_in)
        await self.writer.run(lambda conn: conn.execute(sql, params))

    async def renew_lease(self, thread_id: str, owner: str, lease_seconds: float) -> bool:
        params = (thread_id, owner, time.time() + lease_seconds)
        return await self.writer.run(lambda conn: conn.execute(_SQL["RENEW"], params).rowcount == 1)

    async def thread_attempts(self, thread_id: str) -> int:
        row = await self.readers.run(lambda conn: conn.execute(_SQL["ATTEMPTS"], (thread_id,)).fetchone())
        return int(row[0]) if row else 0

    # --- refs, state --------------------------------------------------------------------------------

    async def put_ref(self, ref: Ref) -> bool:
        try:
            await self.writer.run(lambda conn: _insert_refs(conn, [ref], ref.thread_id))
        except DuplicateRef:
            return False
        return True

    async def get_ref(self, channel: str, key: str) -> Ref | None:
        row = await self.readers.run(lambda conn: conn.execute(_SQL["GET_REF"], (channel, key)).fetchone())
        return None if row is None else Ref(channel=channel, key=key, thread_id=row[0], data=ref_data(row[1]))

    async def get_state(self, key: str) -> Any:
        row = await self.readers.run(lambda conn: conn.execute(_SQL["GET_STATE"], (key,)).fetchone())
        return json.loads(row[0]) if row is not None else None

    async def set_state(self, key: str, value: Any) -> None:
        params = (key, json.dumps(value))
        await self.writer.run(lambda conn: conn.execute(_SQL["SET_STATE"], params))

    # --- outbox ---------------------------------------------------------------------------------------------

    async def claim_outbox(self, channel: str, limit: int, lease_seconds: float) -> list[OutboxRow]:
        now = time.time()

        def probe(conn: sqlite3.Connection) -> bool:
            return conn.execute(_SQL["PROBE_OUTBOX"], (channel, now, 1)).fetchone() is not None

        if not await self.readers.run(probe):
            return []

        def op(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(_SQL["CLAIM_OUTBOX"], (channel, now, limit, now + lease_seconds)).fetchall()

        return sorted((outbox_row(*row) for row in await self.writer.run(op)), key=lambda r: r.id)

    async def add_outbox(self, items: Sequence[OutboxItem]) -> None:
        if items:
            now = time.time()
            await self.writer.run(lambda conn: _insert_outbox(conn, items, None, now))

    async def outbox_sent(self, row_id: int) -> None:
        params = (row_id, time.time())
        await self.writer.run(lambda conn: conn.execute(_SQL["OUTBOX_SENT"], params))

    async def outbox_retry(self, row_id: int, delay: float, error: str) -> None:
        params = (row_id, time.time() + delay, error[:2000])
        await self.writer.run(lambda conn: conn.execute(_SQL["OUTBOX_RETRY"], params))

    async def outbox_failed(self, row_id: int, error: str) -> None:
        params = (row_id, error[:2000])
        await self.writer.run(lambda conn: conn.execute(_SQL["OUTBOX_FAILED"], params))
