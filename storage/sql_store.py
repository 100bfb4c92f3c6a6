"""The SQL implementation of bot.store.Store (SQLAlchemy Core, async; SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import ColumnElement

from bot.errors import Conflict, DuplicateRef, ThreadNotFound
from bot.events import EVENT_ADAPTER, Event
from bot.store import AuditRecord, LedgerEntry, OpsSnapshot, OutboxItem, OutboxRow, Ref, ThreadSummary
from bot.thread import Thread, ThreadStatus
from storage.database import create_engine, create_read_engine
from storage.ops_snapshot import read_snapshot
from storage.schema import deployments, events, outbox, refs, state, threads


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _dump(event: Event) -> str:
    return EVENT_ADAPTER.dump_json(event, exclude_none=True).decode()


class SqlStore:
    """Threads, events, refs, outbox, state and the deployment ledger in one SQL database."""

    def __init__(self, engine: AsyncEngine, reader: AsyncEngine | None = None) -> None:
        self.engine = engine  # every write transaction
        self.reader = reader or engine  # plain reads (a separate pool on SQLite)
        self.sqlite = engine.dialect.name == "sqlite"

    @classmethod
    def from_url(cls, url: str) -> SqlStore:
        writer = create_engine(url)
        return cls(writer, create_read_engine(url, writer))

    async def close(self) -> None:
        await self.engine.dispose()
        if self.reader is not self.engine:
            await self.reader.dispose()

    # --- threads and events ---------------------------------------------------------------------------------

    async def _insert_refs(self, conn: AsyncConnection, items: Sequence[Ref], thread_id: str | None) -> None:
        """Insert refs first in the transaction; a known key aborts the whole write (the caller rolls back)."""
        if not items:
            return
        try:
            await conn.execute(insert(refs), [
                {"channel": ref.channel, "key": ref.key, "thread_id": ref.thread_id or thread_id,
                 "data": json.dumps(ref.data) if ref.data is not None else None}
                for ref in items
            ])
        except IntegrityError:
            keys = ", ".join(f"{ref.channel}:{ref.key}" for ref in items)
            raise DuplicateRef(f"already recorded: one of {keys}") from None

    async def _insert_tail(
        self, conn: AsyncConnection, thread_id: str, new: Sequence[Event], first_seq: int,
        outbox_items: Sequence[OutboxItem], now: float,
    ) -> None:
        if new:
            await conn.execute(insert(events), [
                {"thread_id": thread_id, "seq": first_seq + i, "type": e.type, "at": e.at.timestamp(),
                 "data": _dump(e)}
                for i, e in enumerate(new)
            ])
        await self._insert_outbox(conn, outbox_items, thread_id, now)

    async def _insert_outbox(
        self, conn: AsyncConnection, items: Sequence[OutboxItem], thread_id: str | None, now: float
    ) -> None:
        if items:
            await conn.execute(insert(outbox), [
                {"channel": o.channel, "thread_id": o.thread_id or thread_id, "payload": json.dumps(o.payload),
                 "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
                for o in items
            ])

    async def create_thread(
        self, thread: Thread, status: ThreadStatus, *, refs: Sequence[Ref] = (),
        outbox: Sequence[OutboxItem] = (),
    ) -> None:
        now = time.time()
        async with self.engine.begin() as conn:
            await self._insert_refs(conn, refs, thread.id)
            await conn.execute(insert(threads), {
                "id": thread.id, "agent": thread.agent, "status": status, "title": thread.title[:120],
                "requester": (thread.requester or None) and thread.requester[:255], "seq": thread.seq,
                "created_at": now, "updated_at": now, "not_before": 0.0, "attempts": 0,
            })
            await self._insert_tail(conn, thread.id, thread.events, 1, outbox, now)

    async def load_thread(self, thread_id: str) -> Thread | None:
        # One round trip: the thread's columns ride along with each event row (a thread has at least one).
        query = (
            select(threads.c.agent, threads.c.created_at, threads.c.updated_at, events.c.data)
            .select_from(threads.outerjoin(events, events.c.thread_id == threads.c.id))
            .where(threads.c.id == thread_id)
            .order_by(events.c.seq)
        )
        async with self.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        if not rows:
            return None
        head = rows[0]
        loaded = [EVENT_ADAPTER.validate_json(r.data) for r in rows if r.data is not None]
        return Thread(id=thread_id, agent=head.agent, events=loaded,
                      created_at=_ts(head.created_at), updated_at=_ts(head.updated_at))

    async def append(
        self, thread_id: str, events: Sequence[Event], *, expected_seq: int, status: ThreadStatus,
        agent: str | None, refs: Sequence[Ref] = (), outbox: Sequence[OutboxItem] = (),
    ) -> None:
        now = time.time()
        async with self.engine.begin() as conn:
            # Compare-and-set on the sequence: one writer wins, the other gets Conflict and reloads.
            values: dict[str, Any] = {"seq": expected_seq + len(events), "status": status, "agent": agent,
                                      "updated_at": now}
            if status != "running":
                # Nothing to run: drop any lease now, so a crash before release_thread cannot strand the thread.
                values.update(lease_owner=None, lease_until=None, attempts=0, not_before=0.0)
            result = await conn.execute(
                update(threads).where(threads.c.id == thread_id, threads.c.seq == expected_seq).values(**values)
            )
            if result.rowcount != 1:
                exists = (await conn.execute(select(threads.c.seq).where(threads.c.id == thread_id))).first()
                if exists is None:
                    raise ThreadNotFound(thread_id)
                raise Conflict(f"thread {thread_id} changed (seq {exists.seq}, expected {expected_seq})")
            await self._insert_refs(conn, refs, thread_id)
            await self._insert_tail(conn, thread_id, events, expected_seq + 1, outbox, now)

    async def list_threads(
        self, status: ThreadStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[ThreadSummary]:
        query = select(threads).order_by(threads.c.updated_at.desc()).limit(limit).offset(offset)
        if status is not None:
            query = query.where(threads.c.status == status)
        async with self.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ThreadSummary(id=r.id, agent=r.agent, status=r.status, title=r.title, requester=r.requester,
                              created_at=_ts(r.created_at), updated_at=_ts(r.updated_at)) for r in rows]

    async def count_threads(self) -> dict[str, int]:
        async with self.reader.connect() as conn:
            rows = await conn.execute(select(threads.c.status, func.count()).group_by(threads.c.status))
            return {r[0]: r[1] for r in rows}

    # --- worker leases --------------------------------------------------------------------------------------

    async def claim_thread(self, owner: str, lease_seconds: float) -> str | None:
        now = time.time()
        candidate = (
            select(threads.c.id)
            .where(threads.c.status == "running", threads.c.not_before <= now,
                   or_(threads.c.lease_until.is_(None), threads.c.lease_until < now))
            .order_by(threads.c.updated_at)
            .limit(1)
        )
        if self.sqlite:
            # Most claims find nothing; answer those from the reader pool instead of queueing for the one writer.
            async with self.reader.connect() as conn:
                if (await conn.execute(candidate)).first() is None:
                    return None
        else:
            candidate = candidate.with_for_update(skip_locked=True)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(threads)
                .where(threads.c.id == candidate.scalar_subquery())
                .values(lease_owner=owner, lease_until=now + lease_seconds)
                .returning(threads.c.id)
            )
            row = result.first()
        return row.id if row else None

    async def release_thread(self, thread_id: str, owner: str, retry_in: float | None = None) -> None:
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
        if retry_in is None:
            values.update(attempts=0, not_before=0.0)
        else:
            values.update(attempts=threads.c.attempts + 1, not_before=time.time() + retry_in)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(threads).where(threads.c.id == thread_id, threads.c.lease_owner == owner).values(**values)
            )

    async def renew_lease(self, thread_id: str, owner: str, lease_seconds: float) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(threads).where(threads.c.id == thread_id, threads.c.lease_owner == owner)
                .values(lease_until=time.time() + lease_seconds)
            )
        return bool(result.rowcount)

    async def thread_attempts(self, thread_id: str) -> int:
        async with self.reader.connect() as conn:
            value = (await conn.execute(select(threads.c.attempts).where(threads.c.id == thread_id))).scalar()
        return int(value or 0)

    # --- refs and state -------------------------------------------------------------------------------------

    async def put_ref(self, ref: Ref) -> bool:
        try:
            async with self.engine.begin() as conn:
                await self._insert_refs(conn, [ref], ref.thread_id)
        except DuplicateRef:
            return False
        return True

    async def get_ref(self, channel: str, key: str) -> Ref | None:
        async with self.reader.connect() as conn:
            row = (await conn.execute(
                select(refs).where(refs.c.channel == channel, refs.c.key == key)
            )).first()
        if row is None:
            return None
        return Ref(channel=row.channel, key=row.key, thread_id=row.thread_id,
                   data=json.loads(row.data) if row.data else None)

    async def get_state(self, key: str) -> Any:
        async with self.reader.connect() as conn:
            value = (await conn.execute(select(state.c.value).where(state.c.key == key))).scalar()
        return json.loads(value) if value is not None else None

    async def set_state(self, key: str, value: Any) -> None:
        encoded = json.dumps(value)
        async with self.engine.begin() as conn:
            result = await conn.execute(update(state).where(state.c.key == key).values(value=encoded))
            if result.rowcount == 0:
                await conn.execute(insert(state).values(key=key, value=encoded))

    # --- outbox ---------------------------------------------------------------------------------------------

    async def claim_outbox(self, channel: str, limit: int, lease_seconds: float) -> list[OutboxRow]:
        now = time.time()
        query = (
            select(outbox)
            .where(outbox.c.channel == channel, outbox.c.status == "pending", outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if not self.sqlite:
            query = query.with_for_update(skip_locked=True)
        async with self.engine.begin() as conn:
            rows = (await conn.execute(query)).all()
            if rows:
                # Hide claimed rows for the lease so another dispatcher does not send them meanwhile.
                await conn.execute(
                    update(outbox).where(outbox.c.id.in_([r.id for r in rows]))
                    .values(next_attempt_at=now + lease_seconds, attempts=outbox.c.attempts + 1)
                )
        return [OutboxRow(id=r.id, channel=r.channel, thread_id=r.thread_id, payload=json.loads(r.payload),
                          attempts=r.attempts, created_at=_ts(r.created_at)) for r in rows]

    async def _outbox_set(self, row_id: int, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(outbox).where(outbox.c.id == row_id).values(**values))

    async def outbox_sent(self, row_id: int) -> None:
        await self._outbox_set(row_id, status="sent", sent_at=time.time(), last_error=None)

    async def outbox_retry(self, row_id: int, delay: float, error: str) -> None:
        await self._outbox_set(row_id, next_attempt_at=time.time() + delay, last_error=error[:2000])

    async def outbox_failed(self, row_id: int, error: str) -> None:
        await self._outbox_set(row_id, status="failed", last_error=error[:2000])

    async def add_outbox(self, items: Sequence[OutboxItem]) -> None:
        if items:
            async with self.engine.begin() as conn:
                await self._insert_outbox(conn, items, None, time.time())

    async def outbox_pending(self, channel: str | None = None) -> int:
        query = select(func.count()).select_from(outbox).where(outbox.c.status == "pending")
        if channel is not None:
            query = query.where(outbox.c.channel == channel)
        async with self.reader.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    # --- ledger and audit -----------------------------------------------------------------------------------

    async def ledger_add(self, entry: LedgerEntry) -> bool:
        values = entry.model_dump()
        values["at"] = entry.at.timestamp()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(deployments).values(**values))
        except IntegrityError:
            return False
        return True

    async def ledger_list(self, service: str | None = None, limit: int = 50) -> list[LedgerEntry]:
        query = select(deployments).order_by(deployments.c.at.desc()).limit(limit)
        if service:
            query = query.where(deployments.c.service == service)
        async with self.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [LedgerEntry(**{**r._asdict(), "at": _ts(r.at)}) for r in rows]

    async def audit(self, since: datetime | None, types: Sequence[str]) -> AsyncIterator[AuditRecord]:
        conditions: list[ColumnElement[bool]] = [events.c.type.in_(list(types))]
        if since is not None:
            conditions.append(events.c.at >= since.timestamp())
        query = (
            select(events.c.thread_id, events.c.data, threads.c.agent)
            .join(threads, threads.c.id == events.c.thread_id)
            .where(and_(*conditions))
            .order_by(events.c.at, events.c.thread_id, events.c.seq)
        )
        async with self.reader.connect() as conn:
            result = await conn.stream(query)
            async for row in result:
                yield AuditRecord(thread_id=row.thread_id, agent=row.agent,
                                  event=EVENT_ADAPTER.validate_json(row.data))

    async def ops_snapshot(self) -> OpsSnapshot:
        """The operator's snapshot for /metrics (storage/ops_snapshot.py)."""
        return await read_snapshot(self.reader)


def store_for(url: str) -> SqlStore:
    """The store for a DATABASE_URL."""
    return SqlStore.from_url(url)
