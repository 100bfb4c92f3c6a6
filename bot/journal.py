"""Committing events: derive status, collect every channel's outbox items, write atomically, log, wake workers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import structlog

from bot import telemetry
from bot.channel import Channel
from bot.errors import Conflict
from bot.events import ActionProposed, ActionResult, AgentSelected, ErrorEvent, Event
from bot.store import OutboxItem, Ref, Store
from bot.thread import Thread

log = structlog.get_logger("opsgate.thread")


class Journal:
    """The one place events are written; both the service (people) and the worker (agents) go through it."""

    def __init__(self, store: Store, channels: Sequence[Channel] = ()) -> None:
        self.store = store
        self.channels = list(channels)
        self.wakeup = asyncio.Event()  # a thread became runnable
        self.outbox_ready = asyncio.Event()  # outbox rows were written

    def _outbox(self, thread: Thread, new: Sequence[Event]) -> list[OutboxItem]:
        items: list[OutboxItem] = []
        for channel in self.channels:
            items.extend(channel.outbound(thread, new))
        return items

    async def create(self, thread: Thread, refs: Sequence[Ref] = ()) -> Thread:
        """Store a new thread with its first events."""
        outbox = self._outbox(thread, thread.events)
        await self.store.create_thread(thread, thread.status, refs=refs, outbox=outbox)
        self._after(thread, thread.events, bool(outbox))
        return thread

    async def append(self, thread: Thread, new: Sequence[Event], refs: Sequence[Ref] = ()) -> Thread:
        """Append ``new`` to ``thread`` if nobody else appended since it was loaded (else Conflict)."""
        updated = thread.with_events(list(new))
        outbox = self._outbox(updated, new)
        await self.store.append(
            thread.id, new, expected_seq=thread.seq, status=updated.status, agent=updated.agent,
            refs=refs, outbox=outbox,
        )
        self._after(updated, new, bool(outbox))
        return updated

    async def append_derived(
        self,
        thread_id: str,
        build: Callable[[Thread], Awaitable[Sequence[Event]]],
        *,
        refs: Sequence[Ref] = (),
        attempts: int = 5,
        known: Thread | None = None,
    ) -> Thread | None:
        """Append what ``build`` makes of the current thread; on Conflict reload and build again.

        ``known`` is tried first when the caller holds a fresh copy. None if the thread does not exist.
        """
        for _ in range(attempts):
            thread, known = known or await self.store.load_thread(thread_id), None
            if thread is None:
                return None
            new = await build(thread)
            try:
                return await self.append(thread, new, refs=refs)
            except Conflict:
                continue
        raise Conflict(f"thread {thread_id} is busy; try again")

    async def append_independent(
        self, thread_id: str, new: Sequence[Event], *, known: Thread | None = None
    ) -> Thread | None:
        """Append events that stay true whatever else was appended meanwhile (a tool's result, an audit note)."""

        async def same(_: Thread) -> Sequence[Event]:
            return new

        return await self.append_derived(thread_id, same, attempts=20, known=known)

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        """Queue outbox items that no event caused (e.g. an email channel's answer to an empty mail)."""
        await self.store.add_outbox(items)
        self.outbox_ready.set()

    def _after(self, thread: Thread, new: Sequence[Event], queued: bool) -> None:
        telemetry.committed(thread, new)
        for event in new:
            fields: dict[str, object] = {"thread_id": thread.id, "agent": thread.agent, "type": event.type}
            call = getattr(event, "call", None)
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
            log.info("thread_event", **fields)
        if thread.status == "running":
            self.wakeup.set()
        if queued:
            self.outbox_ready.set()  # after the commit, so the dispatcher finds the rows it was woken for
