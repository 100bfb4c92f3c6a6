"""Converting between typed values and the hot path's row tuples, the same for sqlite3 and asyncpg."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from bot.events import EVENT_ADAPTER, Event
from bot.store import OutboxItem, OutboxRow, Ref
from bot.thread import Thread, ThreadStatus

# One validation call per thread: the stored JSON objects joined into one array.
_EVENTS: TypeAdapter[list[Event]] = TypeAdapter(list[Event])


def ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def dump_event(event: Event) -> str:
    return EVENT_ADAPTER.dump_json(event, exclude_none=True).decode()


def load_events(data: Sequence[str]) -> list[Event]:
    """Validate stored event JSON texts, in order."""
    return _EVENTS.validate_json("[" + ",".join(data) + "]") if data else []


def thread_params(thread: Thread, status: ThreadStatus, now: float) -> tuple[Any, ...]:
    """INSERT_THREAD's parameters; the last one is the creation time."""
    requester = thread.requester[:255] if thread.requester else None
    return (thread.id, thread.agent, status, thread.title[:120], requester, thread.seq, now)


def event_params(thread_id: str, new: Sequence[Event], first_seq: int) -> list[tuple[Any, ...]]:
    return [(thread_id, first_seq + i, e.type, e.at.timestamp(), dump_event(e)) for i, e in enumerate(new)]


def ref_params(items: Sequence[Ref], thread_id: str | None) -> list[tuple[Any, ...]]:
    return [(ref.channel, ref.key, ref.thread_id or thread_id,
             json.dumps(ref.data) if ref.data is not None else None) for ref in items]


def ref_data(value: str | None) -> dict[str, Any] | None:
    return json.loads(value) if value else None


def outbox_params(items: Sequence[OutboxItem], thread_id: str | None, now: float) -> list[tuple[Any, ...]]:
    return [(o.channel, o.thread_id or thread_id, json.dumps(o.payload), now) for o in items]


def outbox_row(
    row_id: int, channel: str, thread_id: str | None, payload: str, attempts: int, created_at: float
) -> OutboxRow:
    """A claimed row; ``attempts`` comes back already counted for this claim, the row reports the earlier ones."""
    return OutboxRow(id=row_id, channel=channel, thread_id=thread_id, payload=json.loads(payload),
                     attempts=attempts - 1, created_at=ts(created_at))


def make_thread(thread_id: str, rows: Sequence[Sequence[Any]]) -> Thread | None:
    """A thread from LOAD_THREAD's rows (agent, created_at, updated_at, event data), or None if there are none."""
    if not rows:
        return None
    agent, created_at, updated_at, _ = rows[0]
    events = load_events([row[3] for row in rows if row[3] is not None])
    return Thread(id=thread_id, agent=agent, events=events, created_at=ts(created_at), updated_at=ts(updated_at))
