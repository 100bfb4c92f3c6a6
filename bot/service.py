"""What people do, for every channel: start a thread, say something in it, decide an approval, look at it.

HTTP, CLI, Slack, email and the web inbox all call these methods, so the same rules apply everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.agent import Registry
from bot.approvals import decide
from bot.config import Settings
from bot.errors import AlreadyDecided, NotAuthorized, NotWaiting, ThreadNotFound
from bot.events import AgentSelected, DecisionRefused, Event, HumanInputReceived, UserMessage, Via, new_id
from bot.journal import Journal
from bot.store import QuarantineItem, Ref, Store, ThreadSummary
from bot.thread import Thread, ThreadStatus


class Service:
    """The application's use cases; holds no per-thread state (factor 12)."""

    def __init__(self, settings: Settings, store: Store, registry: Registry, journal: Journal) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.journal = journal

    async def start_thread(
        self,
        text: str,
        *,
        user: str | None,
        via: Via,
        agent: str | None = None,
        refs: Sequence[Ref] = (),
        thread_id: str | None = None,
    ) -> Thread:
        """Create a thread from a first message; the worker picks it up. DuplicateRef on a retried delivery."""
        events: list[Event] = [UserMessage(text=text, user=user, via=via)]
        if agent is not None:
            self.registry.get(agent)  # UnknownAgent before anything is stored
            events.append(AgentSelected(agent=agent, reason=f"chosen via {via.channel}"))
        elif len(self.registry.names) == 1:
            events.append(AgentSelected(agent=self.registry.default, reason="only agent"))
        tid = thread_id or new_id()
        thread = Thread(id=tid, events=[]).with_events(events)
        return await self.journal.create(thread, refs=[r.model_copy(update={"thread_id": tid}) for r in refs])

    async def get_thread(self, thread_id: str) -> Thread:
        return self._found(thread_id, await self.store.load_thread(thread_id))

    async def list_threads(
        self, status: ThreadStatus | None = None, limit: int = 100, offset: int = 0
    ) -> list[ThreadSummary]:
        return await self.store.list_threads(status, limit, offset)

    async def quarantined(self, limit: int = 100) -> list[QuarantineItem]:
        """Messages set aside because they could not be processed or delivered, newest first."""
        return await self.store.list_quarantine(limit)

    async def add_message(
        self, thread_id: str, text: str, *, user: str | None, via: Via, refs: Sequence[Ref] = ()
    ) -> Thread:
        """A person speaks in an existing thread: answers a question, or asks something new in context."""

        async def message(thread: Thread) -> list[Event]:
            status = thread.status
            if status == "waiting_for_approval":
                pending = thread.pending
                what = pending.action if pending else "an action"
                raise NotWaiting(f"thread {thread_id} is waiting for an approval decision on {what}")
            if status == "waiting_for_human":
                return [HumanInputReceived(text=text, user=user, via=via)]
            return [UserMessage(text=text, user=user, via=via)]

        return self._found(thread_id, await self.journal.append_derived(thread_id, message, refs=refs))

    async def decide(
        self,
        thread_id: str,
        approval_id: str,
        *,
        approved: bool,
        user: str | None,
        via: Via,
        comment: str | None = None,
        arguments: dict[str, Any] | None = None,
        refs: Sequence[Ref] = (),
    ) -> Thread:
        """Record a decision; the first valid one wins, later ones raise AlreadyDecided."""

        async def decision(thread: Thread) -> list[Event]:
            # Rebuilt after every Conflict: the append that beat us may have been another decision.
            agent = self.registry.get(thread.agent or self.registry.default)
            try:
                return [decide(
                    thread, agent, approval_id, approved=approved, user=user, via=via,
                    settings=self.settings, comment=comment, arguments=arguments,
                )]
            except (NotAuthorized, AlreadyDecided) as exc:
                await self.record_refusal(thread_id, approval_id, user, str(exc), via)
                raise

        return self._found(thread_id, await self.journal.append_derived(thread_id, decision, refs=refs))

    @staticmethod
    def _found(thread_id: str, thread: Thread | None) -> Thread:
        if thread is None:
            raise ThreadNotFound(thread_id)
        return thread

    async def record_refusal(
        self, thread_id: str, approval_id: str | None, user: str | None, reason: str, via: Via
    ) -> None:
        """Keep a refused decision in the thread for the audit trail (it changes nothing else)."""
        event = DecisionRefused(approval_id=approval_id, by=user, reason=reason, via=via)
        await self.journal.append_independent(thread_id, [event])
