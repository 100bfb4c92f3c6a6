"""Threads stored the way earlier versions wrote them: 32-hex ids, and each event's JSON whole (its ``type``,
its ``at`` and an approval request's copy of its proposal inside), as rows from before migration 0006 are.

Written with SQLAlchemy Core straight into the tables, the way those versions left them, so tests can show that
today's readers (loads, the audit export, the API, the channels) still take them.
"""

from __future__ import annotations

import secrets

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from bot.thread import Thread, ThreadStatus
from storage.schema import events, threads


def old_id() -> str:
    """An id as ``bot.events.new_id`` made them before they got short: ``uuid4().hex``, 32 hex characters."""
    return secrets.token_hex(16)


async def write_old_thread(url: str, thread: Thread, status: ThreadStatus) -> None:
    """Store ``thread`` with every event's JSON whole, in one transaction on its own engine."""
    at = thread.events[0].at.timestamp()
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(threads).values(
                id=thread.id, agent=thread.agent, status=status, title=thread.title[:120],
                requester=thread.requester, seq=thread.seq, created_at=at, updated_at=at, not_before=0, attempts=0))
            await conn.execute(insert(events), [
                {"thread_id": thread.id, "seq": seq, "type": e.type, "at": e.at.timestamp(),
                 "data": e.model_dump_json(exclude_none=True)}
                for seq, e in enumerate(thread.events, start=1)])
    finally:
        await engine.dispose()
