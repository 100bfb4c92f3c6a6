"""Committing events: derive status, collect every channel's outbox items, write atomically, log, hand over work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import structlog

from bot import telemetry
from bot.channel import Channel
from bot.errors import Conflict, new_error_id
from bot.events import ActionProposed, ActionResult, AgentSelected, ErrorEvent, Event
from bot.handoff import Runnable
from bot.paused import PausedThreads
from bot.store import OutboxItem, QuarantineItem, Ref, Store, TimerChanges
from bot.thread import Thread
from bot.wakeups import Alarm

log = structlog.get_logger("opsgate.thread")

# Asked on every commit which timers the new events start or stop (bot/timers.py), like channels for messages.
Scheduler = Callable[[Thread, Sequence[Event]], TimerChanges | None]


_NO_TIMERS = TimerChanges()

class Journal:
    """The one place events are written; both the service (people) and the worker (agents) go through it."""

    def __init__(self, store: Store, channels: Sequence[Channel] = ()) -> None:
        self.store = store
        self.channels = list(channels)
        self.runnable = Runnable()  # threads our commits made runnable, for this process's worker
        self.paused = PausedThreads()  # threads our commits left waiting for a person, for their answer
        self.outbox_ready = asyncio.Event()  # outbox rows were written
        self.schedulers: list[Scheduler] = []
        self.timers_ready = Alarm()  # rung with the earliest due time of the timers each commit scheduled

    def _timers(self, thread: Thread, new: Sequence[Event], explicit: TimerChanges | None) -> TimerChanges:
        changes = explicit or _NO_TIMERS  # shared and never changed: merged() makes a new value or returns one
        for scheduler in self.schedulers:
            changes = changes.merged(scheduler(thread, new))
        return changes

    def _outbox(self, thread: Thread, new: Sequence[Event]) -> tuple[list[OutboxItem], list[QuarantineItem]]:
        """Every channel's messages for ``new``; a channel whose converter fails is skipped and reported.

        A converter bug on one odd event must not block the thread (or the other channels) forever: the events
        are written, that channel's message is not, and the quarantine says which one and why.
        """
        items: list[OutboxItem] = []
        failed: list[QuarantineItem] = []
        for channel in self.channels:
            try:
                items.extend(channel.outbound(thread, new))
            except Exception as exc:
                error_id = new_error_id()
                log.exception("outbound_failed", channel=channel.name, thread_id=thread.id, error_id=error_id)
                failed.append(QuarantineItem(
                    channel=channel.name, key=f"outbound:{thread.id}:{new[0].id if new else error_id}",
                    reason="could not build the outgoing message",
                    detail=f"error id {error_id}: {type(exc).__name__}: {exc}\nevents: {[e.type for e in new]}",
                ))
        return items, failed

    async def _quarantine(self, failed: Sequence[QuarantineItem]) -> None:
        for item in failed:
            try:
                await self.store.quarantine(item)
            except Exception:  # already logged with its error id; the events themselves are stored
                log.exception("quarantine_failed", channel=item.channel, key=item.key)

    async def create(self, thread: Thread, refs: Sequence[Ref] = (), timers: TimerChanges | None = None) -> Thread:
        """Store a new thread with its first events (and the timers they start)."""
        outbox, failed = self._outbox(thread, thread.events)
        changes = self._timers(thread, thread.events, timers)
        leased = await self.store.create_thread(
            thread, thread.status, refs=refs, outbox=outbox, lease=self.runnable.lease, timers=changes.schedule)
        self._after(thread, thread.events, bool(outbox), leased=leased, timed=_earliest(changes))
        await self._quarantine(failed)
        return thread

    async def append(
        self, thread: Thread, new: Sequence[Event], refs: Sequence[Ref] = (), *, owned: bool = False,
        timers: TimerChanges | None = None,
    ) -> Thread:
        """Append ``new`` to ``thread`` if nobody else appended since it was loaded (else Conflict).

        ``owned``: the caller holds the thread's lease and carries on with it (the worker), so it is not handed
        over as runnable work. ``timers`` (and what the schedulers derive from ``new``) change in the same
        transaction; TimerGone if ``timers.fired`` was fired or cancelled already.
        """
        updated = thread.with_events(list(new))
        outbox, failed = self._outbox(updated, new)
        changes = self._timers(updated, new, timers)
        leased = await self.store.append(
            thread.id, new, expected_seq=thread.seq, status=updated.status, agent=updated.agent,
            refs=refs, outbox=outbox, lease=None if owned else self.runnable.lease, timers=changes or None,
            outcome=updated.outcome,
        )
        self._after(updated, new, bool(outbox), owned=owned, leased=leased, timed=_earliest(changes))
        await self._quarantine(failed)
        return updated

    async def append_derived(
        self,
        thread_id: str,
        build: Callable[[Thread], Awaitable[Sequence[Event]]],
        *,
        refs: Sequence[Ref] = (),
        attempts: int = 5,
        known: Thread | None = None,
        owned: bool = False,
    ) -> Thread | None:
        """Append what ``build`` makes of the current thread; on Conflict reload and build again.

        ``known`` is tried first when the caller holds a fresh copy; else the thread as this process paused it,
        if the store still holds exactly that. None if the thread does not exist.
        """
        if known is None and thread_id in self.paused:
            known = self.paused.get(thread_id, await self.store.thread_seq(thread_id))
        for _ in range(attempts):
            thread, known = known or await self.store.load_thread(thread_id), None
            if thread is None:
                return None
            new = await build(thread)
            try:
                return await self.append(thread, new, refs=refs, owned=owned)
            except Conflict:
                continue
        raise Conflict(f"thread {thread_id} is busy; try again")

    async def append_independent(
        self, thread_id: str, new: Sequence[Event], *, known: Thread | None = None, refs: Sequence[Ref] = (),
        owned: bool = False,
    ) -> Thread | None:
        """Append events that stay true whatever else was appended meanwhile (a tool's result, an audit note)."""

        async def same(_: Thread) -> Sequence[Event]:
            return new

        return await self.append_derived(thread_id, same, refs=refs, attempts=20, known=known, owned=owned)

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        """Queue outbox items that no event caused (e.g. an email channel's answer to an empty mail)."""
        await self.store.add_outbox(items)
        self.outbox_ready.set()

    def _after(
        self, thread: Thread, new: Sequence[Event], queued: bool, *, owned: bool = False, leased: bool = False,
        timed: float | None = None,
    ) -> None:
        # One line per commit listing every event with its fields: complete, at a fraction of a line per event.
        telemetry.committed(thread, new)
        self.paused.committed(thread)
        log.info("thread_events", thread_id=thread.id, agent=thread.agent, status=thread.status,
                 events=[event_fields(event) for event in new])
        if not owned and thread.status == "running":
            self.runnable.offer(thread, leased=leased)
        if queued:
            self.outbox_ready.set()  # after the commit, so the dispatcher finds the rows it was woken for
        if timed is not None:
            self.timers_ready.ring(timed)  # only when due before the timer loop wakes anyway


def _earliest(changes: TimerChanges) -> float | None:
    """The earliest due time (epoch seconds) among the timers a commit scheduled; None if it scheduled none."""
    return min((timer.due_at.timestamp() for timer in changes.schedule), default=None)


def event_fields(event: Event) -> dict[str, object]:
    """What the log says about one event: its type, and its cost, outcome or reason where it has one."""
    fields: dict[str, object] = {"type": event.type}
    call = event.__dict__.get("call")  # not getattr: a miss costs pydantic a raised AttributeError
    if call is not None:
        fields.update(latency_ms=call.latency_ms, tokens=call.prompt_tokens + call.completion_tokens,
                      model=call.model, prompt_hash=call.prompt_hash)
    if isinstance(event, ActionResult):
        fields.update(latency_ms=event.latency_ms, action=event.name, ok=event.ok)
    elif isinstance(event, ActionProposed):
        fields.update(action=event.name, source=event.source)
    elif isinstance(event, ErrorEvent):
        fields.update(kind=event.kind, error=event.message)
    elif isinstance(event, AgentSelected):
        fields.update(selected=event.agent, reason=event.reason)
    return fields
