"""Converting between typed values and the hot path's row tuples, the same for sqlite3 and asyncpg."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from bot.events import EVENT_ADAPTER, ActionProposed, ApprovalRequested, Event
from bot.store import Lease, NewTimer, OutboxItem, OutboxRow, Ref, TimerRow
from bot.text import STORED
from bot.thread import Thread, ThreadStatus

# One validation call per thread: the stored JSON objects joined into one array.
_EVENTS: TypeAdapter[list[Event]] = TypeAdapter(list[Event])


_UNCLEAN = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")  # the escape of a NUL or of a surrogate (JSON has no raw NUL)


def ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


_COPIED = frozenset({"name", "arguments", "reason"})  # what an approval request repeats of its proposal
_EMPTY_DEFAULTS: dict[type[Any], frozenset[str]] = {}


def empty_defaults(model: type[Any]) -> frozenset[str]:
    """The fields of an event type whose default is an empty list or dict: left out of its JSON when empty."""
    names = _EMPTY_DEFAULTS.get(model)
    if names is None:
        names = _EMPTY_DEFAULTS[model] = frozenset(
            name for name, field in model.model_fields.items() if field.default_factory in (list, dict))
    return names


def dump_event(event: Event, proposals: Mapping[str, ActionProposed] | None = None) -> str:
    """The event's JSON without what the row holds anyway: its ``type`` and ``at`` (columns), and an approval
    request's copy of its proposal's name, arguments and reason when that proposal is written with it
    (``proposals``). Like None, an empty list or dict whose default is that same empty value is left out (the
    default gives it back); a default that is not empty is always written, so changing it never changes what
    an old event says."""
    model = type(event)
    exclude = {"type", "at"}
    exclude.update(name for name in empty_defaults(model) if not getattr(event, name))
    if isinstance(event, ApprovalRequested) and proposals:
        proposal = proposals.get(event.action_id)
        if proposal is not None and (proposal.name, proposal.arguments, proposal.reason) == (
            event.name, event.arguments, event.reason
        ):
            exclude |= _COPIED
    # The event's own serializer: the same output as EVENT_ADAPTER's, which first finds it by the type tag, in
    # a third to a half of the time (~2 µs of every event written).
    return model.__pydantic_serializer__.to_json(event, exclude_none=True, exclude=exclude).decode()


def event_json(type_: str, at: float, data: str) -> str:
    """A stored event's full JSON: its type and time put back in front.

    Rows written before 0006 carry their type already, and rows written before the time was left out (schema
    0009 and earlier) their time too, right after the id in pydantic's field order: the time is only added when
    absent. Either way a repeated key
    comes first and the row's own value wins (the last one counts), and both hold the same value. The column's
    float gives the time back to the microsecond (a double's step is under one until 2**33 s, March 2242).
    """
    head = '{"type":"' + type_ + '"'
    if not _has_time(data):
        head += ',"at":' + repr(at)  # epoch seconds, no string to build and parse (pydantic: seconds below 2e10)
    return head + ("," + data[1:] if data != "{}" else "}")


def _has_time(data: str) -> bool:
    """Whether a stored event's JSON holds its own ``at`` (rows written before it was left out)."""
    if not data.startswith('{"id":"'):
        return False
    end = data.find('"', 7)  # the id's closing quote: ids are plain words (an odd one only makes us add ours)
    return data.startswith(',"at":', end + 1)


def load_events(rows: Sequence[tuple[str, float, str]]) -> list[Event]:
    """Validate stored (type, at, JSON) rows of one thread, in order, restoring what ``dump_event`` left out."""
    if not rows:
        return []
    texts = [event_json(type_, at, data) for type_, at, data in rows]
    # An approval request written without its proposal's name, arguments and reason is validated with stand-ins,
    # then given the validated proposal's own values: no JSON parsed or written twice (a sixth of a load).
    # '"name":' is in the text exactly when the request was written whole: a key cannot hide inside a JSON string
    # (its quotes would be escaped), and the request's only nested objects then, its quotes, have no name key.
    borrowing = [i for i, (type_, _, _) in enumerate(rows)
                 if type_ == "approval_requested" and '"name":' not in texts[i] and texts[i].endswith("}")]
    as_stored = {i: texts[i] for i in borrowing}
    for i in borrowing:
        texts[i] = texts[i][:-1] + _STAND_INS
    text = "[" + ",".join(texts) + "]"
    # Rows are storable as written, except rows from before StorableModel (SQLite kept NUL and broken escapes):
    # only those are cleaned again, a scan of the text instead of a walk over every string of every model.
    events = _EVENTS.validate_json(text, context=None if _UNCLEAN.search(text) else STORED)
    for i in borrowing:
        _borrow_proposal(events, i, as_stored[i])
    return events


_STAND_INS = ',"name":"","arguments":{}}'


def _borrow_proposal(events: list[Event], index: int, as_stored: str) -> None:
    """Give the approval request at ``index`` the name, arguments and reason of the latest proposal of its action
    before it; with none there, fail as validating the request as stored fails (its name is missing)."""
    request = events[index]
    assert isinstance(request, ApprovalRequested)
    for earlier in reversed(events[:index]):
        if isinstance(earlier, ActionProposed) and earlier.action_id == request.action_id:
            # The proposal's values were validated as the request's own would have been (the same types); a copy
            # of the arguments, as a request validated from its own JSON holds.
            request.__dict__.update(name=earlier.name, arguments=dict(earlier.arguments), reason=earlier.reason)
            return
    EVENT_ADAPTER.validate_json(as_stored)  # raises: name and arguments are required
    raise AssertionError("an approval request without its action's name validated")  # pragma: no cover


def thread_params(thread: Thread, status: ThreadStatus, now: float) -> tuple[Any, ...]:
    """INSERT_THREAD's parameters: ..., the creation time, the outcome (when created finished)."""
    requester = thread.requester[:255] if thread.requester else None
    outcome = thread.outcome if status in ("done", "failed") else None
    return (thread.id, thread.agent, status, thread.title[:120], requester, thread.seq, now, outcome)


def event_params(thread_id: str, new: Sequence[Event], first_seq: int) -> list[tuple[Any, ...]]:
    proposals = {e.action_id: e for e in new if isinstance(e, ActionProposed)}
    return [(thread_id, first_seq + i, e.type, e.at.timestamp(), dump_event(e, proposals))
            for i, e in enumerate(new)]


def insert_statement(
    statements: Mapping[str, str], thread: Thread, status: ThreadStatus, lease: Lease | None, now: float,
) -> tuple[str, tuple[Any, ...], bool]:
    """The INSERT of a new thread (leased to us when it starts running and our worker runs) with its parameters,
    and whether it leases; the creating twin of ``append_statement``."""
    params = thread_params(thread, status, now)
    if lease is None or status != "running":
        return statements["INSERT_THREAD"], params, False
    return statements["INSERT_THREAD_LEASED"], (*params, lease.owner, now + lease.seconds), True


def append_statement(
    statements: Mapping[str, str], thread_id: str, new_events: int, expected_seq: int, status: ThreadStatus,
    agent: str | None, lease: Lease | None, now: float, outcome: str | None = None,
) -> tuple[str, tuple[Any, ...], bool]:
    """The thread-row UPDATE of an append (stopped, running, or running and leased to us) with its parameters,
    and whether it leases; ``statements`` are the backend's prepared forms of ``hot_sql``. A finished thread
    (done or failed) records its ``outcome``."""
    params: tuple[Any, ...] = (thread_id, expected_seq, expected_seq + new_events, status, agent, now)
    if status != "running":
        return statements["APPEND_STOPPED"], (*params, outcome if status in ("done", "failed") else None), False
    if lease is None:
        return statements["APPEND_RUNNING"], params, False
    return statements["APPEND_LEASING"], (*params, lease.owner, now + lease.seconds), True


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
    """A claimed row; ``attempts`` comes back already counted for this claim, the row reports the earlier ones.

    A payload that cannot be read says why (``problem``) instead of failing the whole claim: the outbox then
    quarantines that row and delivers the others.
    """
    data: Any = {}
    problem = None
    try:
        data = json.loads(payload)
    except ValueError as exc:
        problem = f"payload is not valid JSON: {exc}"
    if not isinstance(data, dict):
        data, problem = {}, problem or f"payload is a JSON {type(data).__name__}, not an object"
    return OutboxRow(id=row_id, channel=channel, thread_id=thread_id, payload=data, problem=problem,
                     attempts=attempts - 1, created_at=ts(created_at))


def make_thread(thread_id: str, rows: Sequence[Sequence[Any]]) -> Thread | None:
    """A thread from LOAD_THREAD's rows (agent, created_at, updated_at, event type, at and data), or None."""
    if not rows:
        return None
    agent, created_at, updated_at, _, _, _ = rows[0]
    events = load_events([(row[3], row[4], row[5]) for row in rows if row[5] is not None])
    # STORED here too: a model's after-validator runs again on every event instance handed to the thread, which
    # walked every string of every event on each load (the events were validated, as stored, just above).
    return Thread.model_validate({"id": thread_id, "agent": agent, "events": events, "created_at": ts(created_at),
                                  "updated_at": ts(updated_at)}, context=STORED)


def timer_params(items: Sequence[NewTimer], thread_id: str) -> list[tuple[Any, ...]]:
    return [(thread_id, t.kind, t.key, t.due_at.timestamp(), json.dumps(t.payload)) for t in items]


def timer_row(
    timer_id: int, thread_id: str, kind: str, key: str, due_at: float, payload: str, attempts: int
) -> TimerRow:
    """A claimed timer; ``attempts`` comes back counted for this claim, the row reports the earlier ones."""
    return TimerRow(id=timer_id, thread_id=thread_id, kind=kind, key=key, due_at=ts(due_at),
                    payload=json.loads(payload), attempts=attempts - 1)
