"""The storage interface the core talks to. ``storage/`` implements it on SQL; nothing in bot/ imports SQL.

Everything crossing this boundary is typed: threads and events, channel references, outbox rows, agents' records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, BaseModel, Field

from bot.credentials import Credentials
from bot.events import Event, utcnow
from bot.text import StorableModel, storable_key
from bot.thread import Outcome, Thread, ThreadStatus


class ThreadSummary(BaseModel):
    """A row of the thread list."""

    id: str
    agent: str | None
    status: ThreadStatus
    title: str
    requester: str | None
    created_at: datetime
    updated_at: datetime
    outcome: Outcome | None = None  # how the latest request ended (None while it runs or waits)


class Ref(StorableModel):
    """A channel's key for a thread (Slack thread ts, email Message-ID, Slack event id for de-duplication)."""

    channel: str
    key: Annotated[str, AfterValidator(storable_key)]
    thread_id: str | None = None
    data: dict[str, Any] | None = None


class OutboxItem(StorableModel):
    """A message a channel must deliver, written in the same transaction as the events that caused it."""

    channel: str
    thread_id: str | None = None
    payload: dict[str, Any]


class OutboxRow(OutboxItem):
    id: int
    attempts: int = 0  # earlier deliveries of this row (the current claim not counted)
    created_at: datetime = Field(default_factory=utcnow)
    problem: str | None = None  # why the stored payload could not be read (then ``payload`` is empty)


class Lease(BaseModel):
    """Lease a thread to ``owner`` in the same commit that makes it runnable (this process's worker)."""

    owner: str
    seconds: float


class Record(StorableModel):
    """One row of an agent's own records (a ledger entry, a grant): the store knows its key, not its meaning."""

    owner: str  # the agent (or core feature) that owns it
    kind: str
    key: str
    tag: str | None = None  # what the owner filters on
    body: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=utcnow)


def _at_most(length: int) -> AfterValidator:
    return AfterValidator(lambda value: value if value is None else value[:length])


class QuarantineItem(StorableModel):
    """A message set aside because it cannot be processed or delivered (a poison message); never retried.

    One per ``(channel, key)``: the first record wins. Built from hostile data, so it never refuses its input:
    long values are shortened to fit their columns.
    """

    channel: Annotated[str, _at_most(32)]
    key: Annotated[str, AfterValidator(storable_key)]
    reason: Annotated[str, _at_most(255)]
    detail: Annotated[str | None, _at_most(10_000)] = None
    attempts: int = 1
    at: datetime = Field(default_factory=utcnow)


class InboxItem(BaseModel):
    """A raw inbound delivery recorded before its ack (a Slack event's JSON), waiting to be handled."""

    channel: str
    key: str
    body: str
    attempts: int = 0  # earlier claims that did not finish it
    received_at: float


class NewTimer(StorableModel):
    """A timer scheduled with the events that cause it: ``kind``'s handler runs on the thread at ``due_at``.

    ``due_at`` is wall-clock time (UTC), compared with the firing process's clock (see bot/timers.py).
    """

    kind: Annotated[str, _at_most(32)]
    due_at: datetime
    key: Annotated[str, _at_most(64)] = ""  # what it is about (an approval id): a later append may cancel by it
    payload: dict[str, Any] = Field(default_factory=dict)


class TimerRow(NewTimer):
    """A claimed, due timer; ``id`` is the database's (a small integer), ``attempts`` the earlier failed claims."""

    id: int
    thread_id: str
    attempts: int = 0


class TimerState(TimerRow):
    """A timer as stored, for listings: its status (pending or failed) and when it was given up."""

    status: str
    fired_at: datetime | None = None
    last_error: str | None = None


class TimerChanges(BaseModel):
    """What an append does to timers, in its transaction: schedule new ones, cancel by key, record a firing."""

    schedule: list[NewTimer] = Field(default_factory=list)
    cancel: list[str] = Field(default_factory=list)  # keys whose pending timers on this thread are deleted
    fired: int | None = None  # the timer this append fires (deletes): TimerGone (nothing written) unless pending

    def __bool__(self) -> bool:
        return bool(self.schedule or self.cancel or self.fired)

    def merged(self, other: TimerChanges | None) -> TimerChanges:
        """Both sets of changes (one firing at most)."""
        if not other:
            return self
        if not self:
            return other
        # Both hold validated values already: no second validation (this runs on every commit that has timers).
        return TimerChanges.model_construct(schedule=[*self.schedule, *other.schedule],
                                            cancel=[*self.cancel, *other.cancel], fired=self.fired or other.fired)


class AuditRecord(BaseModel):
    thread_id: str
    agent: str | None
    event: Event
    outcome: Outcome | None = None  # how the thread's latest request ended, as it is now


class ThreadCount(BaseModel):
    status: str
    agent: str | None
    count: int


class Backlog(BaseModel):
    """How many are waiting and for how long the oldest has (per agent or per channel)."""

    agent: str | None = None
    channel: str = ""
    count: int
    oldest_age_seconds: float


class OpsSnapshot(BaseModel):
    """The state an operator graphs and alerts on, read in one go at scrape time (bot/metrics.py)."""

    threads: list[ThreadCount] = Field(default_factory=list)
    approvals: list[Backlog] = Field(default_factory=list)  # by agent
    outbox: list[Backlog] = Field(default_factory=list)  # by channel, pending rows
    runnable_unclaimed: int = 0
    lease_lag_seconds: float = 0.0


class Records(Protocol):
    async def add_record(self, record: Record) -> bool:
        """Insert a record; False when ``(owner, kind, key)`` was already there (nothing written)."""
        ...

    async def replace_record(self, record: Record, *, expected: Record | None) -> bool:
        """Overwrite a record if it still holds ``expected`` (None: insert if absent); False if it changed."""
        ...

    async def get_record(self, owner: str, kind: str, key: str) -> Record | None: ...

    async def list_records(
        self, owner: str, kind: str, *, tag: str | None = None, limit: int = 50
    ) -> list[Record]:
        """An owner's records of one kind, newest first, optionally only those with ``tag``."""
        ...


class Quarantine(Protocol):
    async def quarantine(self, item: QuarantineItem) -> bool:
        """Set a message aside (logged as ``quarantined``); False if ``(channel, key)`` was already there."""
        ...

    async def list_quarantine(self, limit: int = 100) -> list[QuarantineItem]:
        """The quarantined messages, newest first."""
        ...


class Store(Records, Quarantine, Credentials, Protocol):
    async def create_thread(
        self, thread: Thread, status: ThreadStatus, *, refs: Sequence[Ref] = (), outbox: Sequence[OutboxItem] = (),
        lease: Lease | None = None, timers: Sequence[NewTimer] = (),
    ) -> bool:
        """Insert a new thread with its first events; DuplicateRef if a ref exists (nothing is written).

        With ``lease`` and a running status, the thread is leased to its owner in the same transaction; returns
        whether it was.
        """
        ...

    async def load_thread(self, thread_id: str) -> Thread | None: ...

    async def thread_seq(self, thread_id: str) -> int | None:
        """How many events the thread has stored (None if there is no such thread): one indexed read."""
        ...

    async def append(
        self,
        thread_id: str,
        events: Sequence[Event],
        *,
        expected_seq: int,
        status: ThreadStatus,
        agent: str | None,
        refs: Sequence[Ref] = (),
        outbox: Sequence[OutboxItem] = (),
        lease: Lease | None = None,
        timers: TimerChanges | None = None,
        outcome: Outcome | None = None,
    ) -> bool:
        """Append events atomically; Conflict if another writer appended first, DuplicateRef on a known ref.

        With ``lease`` and a running status, the thread is also leased to its owner unless someone holds it (or a
        retry delay is pending); returns whether this append leased it. ``timers`` are changed in the same
        transaction; TimerGone (nothing written) if ``timers.fired`` names a timer that is no longer pending.
        ``outcome`` is stored with a finished status (listings show it).
        """
        ...

    async def list_threads(
        self, status: ThreadStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[ThreadSummary]: ...

    async def count_threads(self) -> dict[str, int]: ...

    async def claim_threads(self, owner: str, lease_seconds: float, limit: int = 1) -> list[str]:
        """Lease up to ``limit`` runnable threads to ``owner``, the longest waiting first; no two owners ever hold
        the same thread."""
        ...

    async def claim_one(self, thread_id: str, owner: str, lease_seconds: float) -> int | None:
        """Lease this runnable thread (one this process just made runnable); its seq, or None if not claimable."""
        ...

    async def release_thread(self, thread_id: str, owner: str, retry_in: float | None = None) -> None:
        """Give the lease back; ``retry_in`` delays the next attempt (model down) and counts attempts."""
        ...

    async def renew_lease(self, thread_id: str, owner: str, lease_seconds: float) -> bool:
        """Extend a held lease (heartbeat while a step runs); False if the lease was lost."""
        ...

    async def thread_attempts(self, thread_id: str) -> int: ...

    async def put_ref(self, ref: Ref) -> bool:
        """Record a ref on its own; False if it already existed."""
        ...

    async def get_ref(self, channel: str, key: str) -> Ref | None: ...

    async def claim_outbox(self, channel: str, limit: int, lease_seconds: float) -> list[OutboxRow]: ...

    async def outbox_sent(self, row_id: int) -> None: ...

    async def outbox_retry(self, row_id: int, delay: float, error: str) -> None: ...

    async def outbox_failed(self, row_id: int, error: str) -> None: ...

    async def outbox_pending(self, channel: str | None = None) -> int: ...

    async def add_outbox(self, items: Sequence[OutboxItem]) -> None:
        """Queue items no event caused (a channel's direct answer to a message it could not act on)."""
        ...

    async def get_state(self, key: str) -> Any: ...

    async def claim_timers(self, owner: str, limit: int, lease_seconds: float) -> list[TimerRow]:
        """Up to ``limit`` due timers, earliest first, hidden from other claimers for ``lease_seconds``."""
        ...

    async def timer_done(self, timer_id: int) -> bool:
        """Delete a pending timer whose firing caused no events (what it was for is over); False if not pending."""
        ...

    async def timer_failed(self, timer_id: int, error: str) -> None:
        """Give up on a pending timer that can never fire (unknown kind, handler failing every time)."""
        ...

    async def timer_retry(self, timer_id: int, delay: float, error: str) -> None:
        """Fire this timer again after ``delay`` seconds (its handler failed)."""
        ...

    async def next_timer_due(self) -> float | None:
        """The epoch time the next pending timer comes due (None: no pending timer due later than now)."""
        ...

    async def list_timers(self, thread_id: str) -> list[TimerState]:
        """A thread's timers by due time: pending and failed ones (fired and cancelled ones are deleted)."""
        ...

    async def inbox_put(self, channel: str, key: str, body: str) -> bool:
        """Record a raw delivery before acknowledging it; False if one with this key is already waiting."""
        ...

    async def inbox_claim(self, channel: str, limit: int, lease_seconds: float) -> list[InboxItem]:
        """Waiting deliveries, oldest first, hidden from other claimers for the lease."""
        ...

    async def inbox_done(self, channel: str, key: str) -> None:
        """Forget a handled delivery."""
        ...

    async def inbox_retry(self, channel: str, key: str, delay: float) -> None:
        """A delivery whose handling failed is claimable again after ``delay`` seconds."""
        ...

    async def set_state(self, key: str, value: Any) -> None: ...

    def audit(self, since: datetime | None, types: Sequence[str]) -> AsyncIterator[AuditRecord]: ...

    async def ops_snapshot(self) -> OpsSnapshot:
        """Threads by status and agent, waiting approvals, outbox backlog, unclaimed runnable threads (cold)."""
        ...

    async def close(self) -> None: ...
