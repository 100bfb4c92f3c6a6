"""The operator's snapshot (bot.store.OpsSnapshot), read with a few grouped queries at scrape time.

Cold reads only, on the reader engine: nothing here runs on the hot path. The timestamps are float epoch seconds,
so the ages are plain subtractions on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import time

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import Backlog, OpsSnapshot, ThreadCount
from storage.schema import events, outbox, threads


async def read_snapshot(reader: AsyncEngine) -> OpsSnapshot:
    """One consistent-enough picture: each query is cheap and grouped (indexes on status, channel)."""
    now = time.time()
    by_status = select(threads.c.status, threads.c.agent, func.count()).group_by(threads.c.status, threads.c.agent)
    # When each waiting thread's current approval was requested: its latest approval_requested event.
    asked = (
        select(events.c.thread_id, func.max(events.c.at).label("asked"))
        .join(threads, threads.c.id == events.c.thread_id)
        .where(threads.c.status == "waiting_for_approval", events.c.type == "approval_requested")
        .group_by(events.c.thread_id)
        .subquery()
    )
    approvals = (
        select(threads.c.agent, func.count(), func.min(asked.c.asked))
        .join(asked, asked.c.thread_id == threads.c.id)
        .group_by(threads.c.agent)
    )
    backlog = (
        select(outbox.c.channel, func.count(), func.min(outbox.c.created_at))
        .where(outbox.c.status == "pending")
        .group_by(outbox.c.channel)
    )
    # Ready to run and held by nobody: it became claimable at the latest of its last change, its retry time and
    # the end of an expired lease.
    free = or_(threads.c.lease_until.is_(None), threads.c.lease_until < now)
    ready_since = case(
        (threads.c.not_before > threads.c.updated_at, threads.c.not_before), else_=threads.c.updated_at)
    ready_since = case(
        (func.coalesce(threads.c.lease_until, 0.0) > ready_since, threads.c.lease_until), else_=ready_since)
    runnable = select(func.count(), func.min(ready_since)).where(
        and_(threads.c.status == "running", threads.c.not_before <= now, free))
    async with reader.connect() as conn:
        counts = (await conn.execute(by_status)).all()
        waiting = (await conn.execute(approvals)).all()
        queued = (await conn.execute(backlog)).all()
        ready_count, ready_oldest = (await conn.execute(runnable)).one()
    return OpsSnapshot(
        threads=[ThreadCount(status=s, agent=a, count=n) for s, a, n in counts],
        approvals=[Backlog(agent=a, count=n, oldest_age_seconds=max(0.0, now - oldest)) for a, n, oldest in waiting],
        outbox=[Backlog(channel=c, count=n, oldest_age_seconds=max(0.0, now - oldest)) for c, n, oldest in queued],
        runnable_unclaimed=int(ready_count or 0),
        lease_lag_seconds=max(0.0, now - ready_oldest) if ready_oldest is not None else 0.0,
    )
