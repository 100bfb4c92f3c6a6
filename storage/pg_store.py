"""The hot store operations on PostgreSQL: asyncpg with cached prepared statements and group commit."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from bot.errors import Conflict, DuplicateRef, ThreadNotFound, TimerGone
from bot.events import Event
from bot.store import Lease, NewTimer, OutboxItem, OutboxRow, Ref, TimerChanges
from bot.thread import Thread, ThreadStatus
from storage import hot_sql as q
from storage.pg_writer import PgWriter
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

T = TypeVar("T")

_SQL = {name: q.postgres(sql) for name, sql in q.ALL.items()}


def _event_arrays(first: int) -> str:
    """The events of a write as four array parameters from ``$first`` (seq, type, at, data), one row each."""
    return (f"unnest(${first}::int[], ${first + 1}::varchar[], ${first + 2}::float8[], ${first + 3}::text[])"
            " AS e(seq, type, at, data)")


def _outbox_insert(first: int, now: int, only_if: str = "") -> str:
    """The outbox rows of a write from three array parameters from ``$first`` (channel, thread id, payload),
    inserted in array order (ids follow it: a channel delivers in id order), stamped with ``$now``."""
    return (f"INSERT INTO outbox (channel, thread_id, payload, status, attempts, next_attempt_at, created_at)"
            f" SELECT o.channel, o.thread_id, o.payload, 'pending', 0, ${now}, ${now}"
            f" FROM unnest(${first}::varchar[], ${first + 1}::varchar[], ${first + 2}::text[]) WITH ORDINALITY"
            f" AS o(channel, thread_id, payload, n){only_if} ORDER BY o.n")


def _timer_insert(first: int, only_if: str = "") -> str:
    """New pending timers of thread ``$1`` from four array parameters from ``$first`` (kind, key, due_at,
    payload), inserted in array order."""
    return ("INSERT INTO timers (thread_id, kind, key, due_at, payload, status, attempts)"
            " SELECT $1, n.kind, n.key, n.due_at, n.payload, 'pending', 0"
            f" FROM unnest(${first}::varchar[], ${first + 1}::varchar[], ${first + 2}::float8[],"
            f" ${first + 3}::text[]) WITH ORDINALITY AS n(kind, key, due_at, payload, n){only_if} ORDER BY n.n")


def _with_events(update: str, params: int, timers: bool = False) -> str:
    """An append's thread-row UPDATE, its events INSERT and its outbox INSERT as one statement (one round trip,
    and alone no BEGIN and COMMIT either).

    The events come as four arrays after the UPDATE's own ``params``, the outbox rows as three more and, with
    ``timers``, the new timers as four more; all are inserted only when the compare-and-set matched; the
    statement returns the lease columns of the updated row, or no row (Conflict).
    """
    returning = "" if " RETURNING " in update else " RETURNING lease_owner, lease_until"
    matched = " WHERE EXISTS (SELECT 1 FROM up)"
    scheduled = f" tim AS ({_timer_insert(params + 8, matched)})," if timers else ""
    return (
        f"WITH up AS ({update}{returning}), ins AS (INSERT INTO events (thread_id, seq, type, at, data)"
        f" SELECT $1, e.seq, e.type, e.at, e.data FROM {_event_arrays(params + 1)}{matched}),{scheduled}"
        f" outq AS ({_outbox_insert(params + 5, 6, matched)})"
        " SELECT lease_owner, lease_until FROM up"
    )


def _created_with_events(insert: str, params: int, timers: bool = False) -> str:
    """A new thread's row, its first events, its outbox rows and (``timers``) its timers as one statement (a
    duplicate id fails all)."""
    scheduled = f", tim AS ({_timer_insert(params + 8)})" if timers else ""
    return (f"WITH t AS ({insert}), ins AS (INSERT INTO events (thread_id, seq, type, at, data)"
            f" SELECT $1, e.seq, e.type, e.at, e.data FROM {_event_arrays(params + 1)}){scheduled}"
            f" {_outbox_insert(params + 5, 7)}")


# Keyed by the plain statement's text, as ``append_statement`` and ``insert_statement`` pick it, and by whether
# the write schedules timers (their rows go into the same statement: a request's expiry costs no round trip).
_APPEND_WITH_EVENTS = {
    (_SQL[name], timers): _with_events(_SQL[name], params, timers)
    for name, params in (("APPEND_RUNNING", 6), ("APPEND_STOPPED", 7), ("APPEND_LEASING", 8))
    for timers in (False, True)
}
_CREATE_WITH_EVENTS = {
    (_SQL[name], timers): _created_with_events(_SQL[name], params, timers)
    for name, params in (("INSERT_THREAD", 8), ("INSERT_THREAD_LEASED", 10))
    for timers in (False, True)
}


def _arrays(rows: Sequence[tuple[Any, ...]], first: int, count: int) -> list[list[Any]]:
    """Columns ``first`` .. ``first + count - 1`` of ``rows`` as one list each (the array parameters of a CTE)."""
    return [[row[i] for row in rows] for i in range(first, first + count)]


def _event_columns(thread_id: str, events: Sequence[Event], first_seq: int) -> list[list[Any]]:
    """The four arrays ``_event_arrays`` takes (seq, type, at, data)."""
    return _arrays(event_params(thread_id, events, first_seq), 1, 4)


def _outbox_columns(items: Sequence[OutboxItem], thread_id: str) -> list[list[Any]]:
    """The three arrays ``_outbox_insert`` takes (channel, thread id, payload)."""
    return _arrays(outbox_params(items, thread_id, 0.0), 0, 3)


def _timer_columns(items: Sequence[NewTimer], thread_id: str) -> list[list[Any]]:
    """The four arrays ``_timer_insert`` takes (kind, key, due_at, payload); none without timers."""
    return _arrays(timer_params(items, thread_id), 1, 4) if items else []


def _rowcount(status: str) -> int:
    """Rows touched, from asyncpg's command tag ("UPDATE 1", "INSERT 0 1")."""
    return int(status.rsplit(" ", 1)[-1])


async def _insert_refs(conn: asyncpg.Connection, items: Sequence[Ref], thread_id: str | None) -> None:
    if not items:
        return
    try:
        await conn.executemany(_SQL["INSERT_REF"], ref_params(items, thread_id))
    except asyncpg.UniqueViolationError:
        keys = ", ".join(f"{ref.channel}:{ref.key}" for ref in items)
        raise DuplicateRef(f"already recorded: one of {keys}") from None


async def _insert_outbox(
    conn: asyncpg.Connection, items: Sequence[OutboxItem], thread_id: str | None, now: float
) -> None:
    if items:
        await conn.executemany(_SQL["INSERT_OUTBOX"], outbox_params(items, thread_id, now))


async def _fire_timer(conn: asyncpg.Connection, timers: TimerChanges | None) -> None:
    """First in the transaction: the timer this append fires must still be pending, else nothing is written.

    A concurrent firing (or cancelling) of the same timer holds its row lock: this DELETE waits for that commit,
    then matches nothing (the row is gone; PostgreSQL re-checks the rows it waited for).
    """
    if timers is not None and timers.fired is not None:
        if _rowcount(await conn.execute(_SQL["FIRE_TIMER"], timers.fired)) != 1:
            raise TimerGone(f"timer {timers.fired} is no longer pending")


async def _cancel_timers(conn: asyncpg.Connection, thread_id: str, cancel: Sequence[str]) -> None:
    """Before the append's statement: a timer it schedules under a cancelled key stays."""
    for key in cancel:
        await conn.execute(_SQL["CANCEL_TIMERS"], thread_id, key)


class PgHot:
    """The same operations as ``SqliteHot``, on a PostgreSQL database."""

    def __init__(self, dsn: str) -> None:
        self.writer = PgWriter(dsn)

    async def close(self) -> None:
        await self.writer.close()

    def _statement(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> Awaitable[T]:
        """A write that is one statement: alone, it needs no BEGIN and COMMIT (``PgWriter.run``)."""
        return self.writer.run(op, one_statement=True)

    async def create_thread(
        self, thread: Thread, status: ThreadStatus, refs: Sequence[Ref], outbox: Sequence[OutboxItem],
        lease: Lease | None, timers: Sequence[NewTimer] = (),
    ) -> bool:
        now = time.time()
        sql, params, leased = insert_statement(_SQL, thread, status, lease, now)

        statement = _CREATE_WITH_EVENTS[sql, bool(timers)]
        columns = [*_event_columns(thread.id, thread.events, 1), *_outbox_columns(outbox, thread.id),
                   *_timer_columns(timers, thread.id)]

        async def op(conn: asyncpg.Connection) -> None:
            await _insert_refs(conn, refs, thread.id)
            await conn.execute(statement, *params, *columns)  # the thread row, its events, outbox rows and timers

        await self.writer.run(op, one_statement=not refs)
        return leased

    async def load_thread(self, thread_id: str) -> Thread | None:
        rows = await self.writer.read(lambda conn: conn.fetch(_SQL["LOAD_THREAD"], thread_id))
        return make_thread(thread_id, rows)

    async def thread_seq(self, thread_id: str) -> int | None:
        value = await self.writer.read(lambda conn: conn.fetchval(_SQL["THREAD_SEQ"], thread_id))
        return None if value is None else int(value)

    async def append(
        self, thread_id: str, events: Sequence[Event], expected_seq: int, status: ThreadStatus,
        agent: str | None, refs: Sequence[Ref], outbox: Sequence[OutboxItem], lease: Lease | None,
        timers: TimerChanges | None = None, outcome: str | None = None,
    ) -> bool:
        now = time.time()
        sql, params, leasing = append_statement(
            _SQL, thread_id, len(events), expected_seq, status, agent, lease, now, outcome)

        schedule = timers.schedule if timers else ()
        # Timer rows are locked before the thread row, as a firing does (its timer, then its thread's append): one
        # lock order, so a decision and an expiry of the same request queue instead of deadlocking. New timers
        # lock nothing that exists: they go into the append's own statement.
        locks_timers = timers is not None and (timers.fired is not None or bool(timers.cancel))
        with_events = _APPEND_WITH_EVENTS[sql, bool(schedule)]
        columns = [*_event_columns(thread_id, events, expected_seq + 1), *_outbox_columns(outbox, thread_id),
                   *_timer_columns(schedule, thread_id)]

        async def op(conn: asyncpg.Connection) -> bool:
            if timers is not None and locks_timers:
                await _fire_timer(conn, timers)
                await _cancel_timers(conn, thread_id, timers.cancel)
            row = await conn.fetchrow(with_events, *params, *columns)  # compare-and-set, events, outbox, timers
            if row is None:
                seq = await conn.fetchval(_SQL["THREAD_SEQ"], thread_id)
                if seq is None:
                    raise ThreadNotFound(thread_id)
                raise Conflict(f"thread {thread_id} changed (seq {seq}, expected {expected_seq})")
            await _insert_refs(conn, refs, thread_id)
            # A lease this append took, not one held before.
            return leasing and (row[0], row[1]) == (params[6], params[7])

        async def guarded(conn: asyncpg.Connection) -> bool:
            try:
                return await op(conn)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                # Grouped writes of other threads can still meet in the other order across one transaction:
                # PostgreSQL undoes this one (its savepoint); the caller reloads and tries again, as after a Conflict.
                raise Conflict(f"thread {thread_id} is being changed concurrently") from None

        return await self.writer.run(guarded, one_statement=not (locks_timers or refs))

    # --- leases ---------------------------------------------------------------------------------------------

    async def claim_threads(self, owner: str, lease_seconds: float, limit: int) -> list[str]:
        now = time.time()
        # FOR UPDATE SKIP LOCKED: a claim never waits for (or takes) a row another claimer holds.
        rows = await self._statement(
            lambda conn: conn.fetch(_SQL["CLAIM_ANY"], now, owner, now + lease_seconds, limit))
        return [str(row[0]) for row in sorted(rows, key=lambda row: row[1])]

    async def claim_one(self, thread_id: str, owner: str, lease_seconds: float) -> int | None:
        now = time.time()
        seq = await self._statement(
            lambda conn: conn.fetchval(_SQL["CLAIM_ONE"], thread_id, owner, now + lease_seconds, now))
        return None if seq is None else int(seq)

    async def release_thread(self, thread_id: str, owner: str, retry_in: float | None) -> None:
        if retry_in is None:
            await self._statement(lambda conn: conn.execute(_SQL["RELEASE"], thread_id, owner))
        else:
            until = time.time() + retry_in
            await self._statement(lambda conn: conn.execute(_SQL["RELEASE_RETRY"], thread_id, owner, until))

    async def renew_lease(self, thread_id: str, owner: str, lease_seconds: float) -> bool:
        until = time.time() + lease_seconds
        status = await self._statement(lambda conn: conn.execute(_SQL["RENEW"], thread_id, owner, until))
        return _rowcount(status) == 1

    async def thread_attempts(self, thread_id: str) -> int:
        value = await self.writer.read(lambda conn: conn.fetchval(_SQL["ATTEMPTS"], thread_id))
        return int(value or 0)

    # --- refs, state --------------------------------------------------------------------------------

    async def put_ref(self, ref: Ref) -> bool:
        try:
            await self.writer.run(lambda conn: _insert_refs(conn, [ref], ref.thread_id))
        except DuplicateRef:
            return False
        return True

    async def get_ref(self, channel: str, key: str) -> Ref | None:
        row = await self.writer.read(lambda conn: conn.fetchrow(_SQL["GET_REF"], channel, key))
        return None if row is None else Ref(channel=channel, key=key, thread_id=row[0], data=ref_data(row[1]))

    async def get_state(self, key: str) -> Any:
        value = await self.writer.read(lambda conn: conn.fetchval(_SQL["GET_STATE"], key))
        return json.loads(value) if value is not None else None

    async def set_state(self, key: str, value: Any) -> None:
        encoded = json.dumps(value)
        await self._statement(lambda conn: conn.execute(_SQL["SET_STATE"], key, encoded))

    # --- outbox ---------------------------------------------------------------------------------------------

    async def claim_outbox(self, channel: str, limit: int, lease_seconds: float) -> list[OutboxRow]:
        now = time.time()
        rows = await self._statement(
            lambda conn: conn.fetch(_SQL["CLAIM_OUTBOX"], channel, now, limit, now + lease_seconds))
        return sorted((outbox_row(*row) for row in rows), key=lambda r: r.id)

    async def add_outbox(self, items: Sequence[OutboxItem]) -> None:
        if items:
            now = time.time()
            await self.writer.run(lambda conn: _insert_outbox(conn, items, None, now))

    async def outbox_sent(self, row_id: int) -> None:
        now = time.time()
        await self._statement(lambda conn: conn.execute(_SQL["OUTBOX_SENT"], row_id, now))

    async def outbox_retry(self, row_id: int, delay: float, error: str) -> None:
        until = time.time() + delay
        await self._statement(lambda conn: conn.execute(_SQL["OUTBOX_RETRY"], row_id, until, error[:2000]))

    async def outbox_failed(self, row_id: int, error: str) -> None:
        await self._statement(lambda conn: conn.execute(_SQL["OUTBOX_FAILED"], row_id, error[:2000]))
