"""The SQL implementation of bot.store.Store (SQLite and PostgreSQL): the hot path direct, the rest SQLAlchemy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Self, get_args

from sqlalchemy import Select, and_, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.expression import ColumnElement

from bot.events import EVENT_ADAPTER, Event
from bot.store import (
    AuditRecord,
    InboxItem,
    Lease,
    NewTimer,
    OpsSnapshot,
    OutboxItem,
    OutboxRow,
    Ref,
    ThreadSummary,
    TimerChanges,
)
from bot.text import storable, storable_key
from bot.thread import Outcome, Thread, ThreadStatus
from storage import inbox
from storage.credential_store import CredentialStore
from storage.database import asyncpg_dsn, create_engine, create_read_engine, is_sqlite, sqlite_path
from storage.ops_snapshot import read_snapshot
from storage.pg_store import PgHot
from storage.quarantine_store import QuarantineStore
from storage.record_store import RecordStore
from storage.rows import event_json, load_events, ts
from storage.schema import events, outbox, threads
from storage.sqlite_store import SqliteHot
from storage.timer_store import TimerStore


class SqlStore(TimerStore, QuarantineStore, CredentialStore, RecordStore):
    """Threads, events, refs, outbox, state, timers, agents' records, quarantine and credentials in one SQL database.

    The hot path (threads, events, leases, refs, outbox, state) goes straight to the driver with
    group commit (``SqliteHot`` or ``PgHot``); listings, counts and the audit stream stay on SQLAlchemy.
    """

    def __init__(self, engine: AsyncEngine, reader: AsyncEngine, hot: SqliteHot | PgHot) -> None:
        self.engine = engine  # SQLAlchemy: cold queries (writes too, on PostgreSQL only)
        self.reader = reader  # plain cold reads (a separate pool on SQLite)
        self.hot = hot

    @classmethod
    def from_url(cls, url: str) -> Self:
        writer = create_engine(url)
        hot: SqliteHot | PgHot
        if is_sqlite(url):
            hot = SqliteHot(sqlite_path(url))
        else:
            hot = PgHot(asyncpg_dsn(url))
        return cls(writer, create_read_engine(url, writer), hot)

    async def close(self) -> None:
        await self.hot.close()
        await self.engine.dispose()
        if self.reader is not self.engine:
            await self.reader.dispose()

    # --- threads and events (hot) ---------------------------------------------------------------------------

    async def create_thread(
        self, thread: Thread, status: ThreadStatus, *, refs: Sequence[Ref] = (),
        outbox: Sequence[OutboxItem] = (), lease: Lease | None = None, timers: Sequence[NewTimer] = (),
    ) -> bool:
        return await self.hot.create_thread(thread, status, refs, outbox, lease, timers)

    async def load_thread(self, thread_id: str) -> Thread | None:
        return await self.hot.load_thread(storable(thread_id))  # a raw id with NUL would be a PostgreSQL error

    async def thread_seq(self, thread_id: str) -> int | None:
        return await self.hot.thread_seq(storable(thread_id))

    async def append(
        self, thread_id: str, events: Sequence[Event], *, expected_seq: int, status: ThreadStatus,
        agent: str | None, refs: Sequence[Ref] = (), outbox: Sequence[OutboxItem] = (), lease: Lease | None = None,
        timers: TimerChanges | None = None, outcome: Outcome | None = None,
    ) -> bool:
        return await self.hot.append(thread_id, events, expected_seq, status, agent, refs, outbox, lease, timers,
                                     outcome)

    async def list_threads(
        self, status: ThreadStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[ThreadSummary]:
        query: Select[Any]
        if status is not None:
            query = (select(threads).where(threads.c.status == status).order_by(threads.c.updated_at.desc())
                     .limit(limit).offset(offset))
        else:
            query = _all_statuses(limit, offset)
        async with self.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ThreadSummary(id=r.id, agent=r.agent, status=r.status, title=r.title, requester=r.requester,
                              created_at=ts(r.created_at), updated_at=ts(r.updated_at), outcome=r.outcome)
                for r in rows]

    async def count_threads(self) -> dict[str, int]:
        async with self.reader.connect() as conn:
            rows = await conn.execute(select(threads.c.status, func.count()).group_by(threads.c.status))
            return {r[0]: r[1] for r in rows}

    # --- worker leases (hot) --------------------------------------------------------------------------------

    async def claim_threads(self, owner: str, lease_seconds: float, limit: int = 1) -> list[str]:
        return await self.hot.claim_threads(owner, lease_seconds, limit)

    async def claim_one(self, thread_id: str, owner: str, lease_seconds: float) -> int | None:
        return await self.hot.claim_one(thread_id, owner, lease_seconds)

    async def release_thread(self, thread_id: str, owner: str, retry_in: float | None = None) -> None:
        await self.hot.release_thread(thread_id, owner, retry_in)

    async def renew_lease(self, thread_id: str, owner: str, lease_seconds: float) -> bool:
        return await self.hot.renew_lease(thread_id, owner, lease_seconds)

    async def thread_attempts(self, thread_id: str) -> int:
        return await self.hot.thread_attempts(thread_id)

    # --- refs and state (hot) -------------------------------------------------------------------------------

    async def put_ref(self, ref: Ref) -> bool:
        return await self.hot.put_ref(ref)

    async def get_ref(self, channel: str, key: str) -> Ref | None:
        # Keys were made storable when recorded; look up the same raw key the same way.
        return await self.hot.get_ref(storable(channel), storable_key(key))

    async def get_state(self, key: str) -> Any:
        return await self.hot.get_state(key)

    async def set_state(self, key: str, value: Any) -> None:
        await self.hot.set_state(key, value)

    # --- inbox (hot: the Slack ack path) --------------------------------------------------------------------

    async def inbox_put(self, channel: str, key: str, body: str) -> bool:
        return await inbox.inbox_put(self.hot, channel, key, body)

    async def inbox_claim(self, channel: str, limit: int, lease_seconds: float) -> list[InboxItem]:
        return await inbox.inbox_claim(self.hot, channel, limit, lease_seconds)

    async def inbox_done(self, channel: str, key: str) -> None:
        await inbox.inbox_done(self.hot, channel, key)

    async def inbox_retry(self, channel: str, key: str, delay: float) -> None:
        await inbox.inbox_retry(self.hot, channel, key, delay)

    # --- outbox (hot, except the count) ---------------------------------------------------------------------

    async def claim_outbox(self, channel: str, limit: int, lease_seconds: float) -> list[OutboxRow]:
        return await self.hot.claim_outbox(channel, limit, lease_seconds)

    async def outbox_sent(self, row_id: int) -> None:
        await self.hot.outbox_sent(row_id)

    async def outbox_retry(self, row_id: int, delay: float, error: str) -> None:
        await self.hot.outbox_retry(row_id, delay, error)

    async def outbox_failed(self, row_id: int, error: str) -> None:
        await self.hot.outbox_failed(row_id, error)

    async def add_outbox(self, items: Sequence[OutboxItem]) -> None:
        await self.hot.add_outbox(items)

    async def outbox_pending(self, channel: str | None = None) -> int:
        query = select(func.count()).select_from(outbox).where(outbox.c.status == "pending")
        if channel is not None:
            query = query.where(outbox.c.channel == channel)
        async with self.reader.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    # --- audit ------------------------------------------------------------------------------------------

    async def audit(self, since: datetime | None, types: Sequence[str]) -> AsyncIterator[AuditRecord]:
        conditions: list[ColumnElement[bool]] = [events.c.type.in_(list(types))]
        if since is not None:
            conditions.append(events.c.at >= since.timestamp())
        query = (
            select(events.c.thread_id, events.c.seq, events.c.type, events.c.at, events.c.data, threads.c.agent,
                   threads.c.outcome)
            .join(threads, threads.c.id == events.c.thread_id)
            .where(and_(*conditions))
            .order_by(events.c.at, events.c.thread_id, events.c.seq)
        )
        async with self.reader.connect() as conn:
            result = await conn.stream(query)
            async for row in result:
                if row.type == "approval_requested":  # stored without its proposal's copy: read it whole
                    thread = await self.load_thread(row.thread_id)
                    event: Event = (thread.events[row.seq - 1] if thread
                                    else load_events([(row.type, row.at, row.data)])[0])
                else:
                    event = EVENT_ADAPTER.validate_json(event_json(row.type, row.at, row.data))
                yield AuditRecord(thread_id=row.thread_id, agent=row.agent, event=event, outcome=row.outcome)

    async def ops_snapshot(self) -> OpsSnapshot:
        """The operator's snapshot for /metrics (storage/ops_snapshot.py)."""
        return await read_snapshot(self.reader)


_STATUSES: tuple[str, ...] = get_args(ThreadStatus)


def _all_statuses(limit: int, offset: int) -> Select[Any]:
    """A page of all threads, most recently updated first: the newest ``limit + offset`` of each status, each an
    index search in ``ix_threads_status_updated`` already in order, merged (no index on updated_at alone, 0013).
    Only our code writes the status column, always a ThreadStatus."""
    newest = [select(threads).where(threads.c.status == status).order_by(threads.c.updated_at.desc())
              .limit(limit + offset).subquery(f"newest_{i}") for i, status in enumerate(_STATUSES)]
    merged = union_all(*(select(part) for part in newest)).subquery("merged")
    return select(merged).order_by(merged.c.updated_at.desc()).limit(limit).offset(offset)


def store_for(url: str) -> SqlStore:
    """The store for a DATABASE_URL."""
    return SqlStore.from_url(url)
