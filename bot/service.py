"""What people do, for every channel: start a thread, say something in it, decide an approval, look at it.

HTTP, CLI, Slack, email and the web inbox all call these methods, so the same rules apply everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.agent import Registry
from bot.approvals import decide
from bot.authorization import LOCAL_CHANNELS
from bot.config import Settings
from bot.errors import (
    AlreadyDecided,
    ApprovalExpired,
    NotAuthorized,
    NotRequester,
    NotWaiting,
    ThreadNotFound,
    TooLarge,
)
from bot.events import (
    AgentSelected,
    ApprovalDecided,
    DecisionRefused,
    Event,
    HumanInputReceived,
    ThreadCancelled,
    UserMessage,
    Via,
    new_id,
    utcnow,
)
from bot.foreground import Foreground
from bot.journal import Journal
from bot.lifecycle import expired, expiry_event
from bot.people import Actor, identity_of, same_person
from bot.store import QuarantineItem, Ref, Store, ThreadSummary
from bot.thread import Thread, ThreadStatus

MAX_OFFSET = 1_000_000_000


class Service:
    """The application's use cases; holds no per-thread state (factor 12)."""

    def __init__(self, settings: Settings, store: Store, registry: Registry, journal: Journal,
                 foreground: Foreground | None = None) -> None:
        self.settings = settings
        self.foreground = foreground or Foreground()  # acks first (bot/foreground.py)
        self.store = store
        self.registry = registry
        self.journal = journal

    async def start_thread(
        self,
        text: str,
        *,
        user: Actor | str | None,
        via: Via,
        agent: str | None = None,
        refs: Sequence[Ref] = (),
        thread_id: str | None = None,
    ) -> Thread:
        """Create a thread from a first message; the worker picks it up. DuplicateRef on a retried delivery."""
        self._check_size("message", text)
        events: list[Event] = [UserMessage(text=text, user=identity_of(user), person=self.person(user), via=via)]
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
        """A page of threads, most recently updated first; offsets past any real table read as empty pages."""
        # Beyond MAX_OFFSET there are no rows anyway; a bigger number would overflow the database's integer.
        return await self.store.list_threads(status, limit, max(0, min(offset, MAX_OFFSET)))

    async def quarantined(self, limit: int = 100) -> list[QuarantineItem]:
        """Messages set aside because they could not be processed or delivered, newest first."""
        return await self.store.list_quarantine(limit)

    async def add_message(
        self, thread_id: str, text: str, *, user: Actor | str | None, via: Via, refs: Sequence[Ref] = ()
    ) -> Thread:
        """A person speaks in an existing thread: answers a question, or asks something new in context."""
        self._check_size("message", text)

        person = self.person(user)

        async def message(thread: Thread) -> list[Event]:
            status = thread.status
            if status == "waiting_for_approval":
                pending = thread.pending
                what = pending.action if pending else "an action"
                raise NotWaiting(f"thread {thread_id} is waiting for an approval decision on {what}")
            if status == "waiting_for_human":
                return [HumanInputReceived(text=text, user=identity_of(user), person=person, via=via)]
            return [UserMessage(text=text, user=identity_of(user), person=person, via=via)]

        return self._found(thread_id, await self.journal.append_derived(thread_id, message, refs=refs))

    async def decide(
        self,
        thread_id: str,
        approval_id: str,
        *,
        approved: bool,
        user: Actor | str | None,
        via: Via,
        comment: str | None = None,
        arguments: dict[str, Any] | None = None,
        refs: Sequence[Ref] = (),
    ) -> Thread:
        """Record a decision; the first valid one wins, later ones raise AlreadyDecided.

        At or after the request's expiry instant the decision does not count: the expiry is recorded instead (if
        its timer has not done so yet) and ApprovalExpired raised. Either way one closing decision is stored.
        """
        self._check_size("comment", comment or "")
        too_late: list[str] = []

        async def decision(thread: Thread) -> list[Event]:
            # Rebuilt after every Conflict: the append that beat us may have been another decision.
            earlier = thread.decision(approval_id)
            if earlier is not None and earlier.closed_by == "expiry":  # the expiry timer won the race
                reason = f"approval {approval_id} expired before this decision; the request was rejected as expired"
                await self.record_refusal(thread_id, approval_id, user, reason, via, refs=refs)
                raise ApprovalExpired(reason)
            pending = thread.pending
            if pending is not None and pending.approval_id == approval_id and expired(pending, utcnow()):
                assert pending.expires_at is not None
                reason = (f"approval {approval_id} expired at {pending.expires_at:%Y-%m-%d %H:%M:%S} UTC; "
                          "the request was rejected as expired")
                too_late.append(reason)
                refused = DecisionRefused(approval_id=approval_id, by=identity_of(user), by_person=self.person(user),
                                          reason=reason, via=via)
                return [expiry_event(thread, pending), refused]  # the expiry closes it; the click stays on record
            agent = self.registry.get(thread.agent or self.registry.default)
            try:
                return [decide(
                    thread, agent, approval_id, approved=approved, user=user, via=via,
                    settings=self.settings, comment=comment, arguments=arguments,
                )]
            except (NotAuthorized, AlreadyDecided) as exc:
                # The refusal is what this request caused: its refs (a replay guard) are recorded with it.
                await self.record_refusal(thread_id, approval_id, user, str(exc), via, refs=refs)
                raise

        thread = self._found(thread_id, await self.journal.append_derived(thread_id, decision, refs=refs))
        if too_late:
            raise ApprovalExpired(too_late[-1])
        return thread

    async def cancel(
        self, thread_id: str, *, user: Actor | str | None, via: Via, reason: str | None = None,
        refs: Sequence[Ref] = (),
    ) -> Thread:
        """The requester withdraws the pending request or stops the thread; ``cancelled`` is its outcome.

        Only the person who started the thread may (in open mode: anyone on a local channel). A thread that is
        finished already raises NotWaiting; an execution in progress is not interrupted (its result is kept),
        but nothing runs after it.
        """
        self._check_size("reason", reason or "")
        person = self.person(user)
        by = identity_of(user)

        async def stop(thread: Thread) -> list[Event]:
            if by is None:
                raise NotRequester("withdrawing needs an identified user")
            if not self.may_cancel(thread, user, via):
                raise NotRequester(f"only the requester ({thread.requester or 'unknown'}) may withdraw or stop "
                                   "this thread")
            if thread.status in ("done", "failed"):
                raise NotWaiting(f"thread {thread_id} has already finished ({thread.outcome})")
            events: list[Event] = []
            pending = thread.pending
            text = (reason or "").strip() or None
            if pending is not None:
                events.append(ApprovalDecided(
                    approval_id=pending.approval_id, action_id=pending.action_id, approved=False, by=by,
                    by_person=person, comment=f"withdrawn by the requester{': ' + text if text else ''}", via=via,
                    closed_by="withdrawal",
                ))
            events.append(ThreadCancelled(by=by, by_person=person, reason=text, via=via))
            return events

        return self._found(thread_id, await self.journal.append_derived(thread_id, stop, refs=refs))

    def may_cancel(self, thread: Thread, user: Actor | str | None, via: Via) -> bool:
        """Whether ``user`` may withdraw or stop this thread from ``via``: the requester (open mode: anyone local)."""
        if self.settings.open_mode and via.channel in LOCAL_CHANNELS:
            return True
        who = self.settings.people.person_of(user) if user else None
        first = thread.first_message
        if who is None or first is None:
            return False
        asked = [self.settings.people.resolve(first.person)] if first.person else []
        if first.user:
            asked.append(self.settings.people.resolve(first.user))
        return any(same_person(who, p) for p in asked)

    def person(self, user: Actor | str | None) -> str | None:
        """The name of the person behind a channel identity (None for nobody)."""
        return self.settings.people.person_of(user).name if user else None

    def _check_size(self, what: str, text: str) -> None:
        """TooLarge for text over OPSGATE_MAX_MESSAGE_CHARS: every channel comes through here, so none can forget."""
        limit = self.settings.max_message_chars
        if len(text) > limit:
            raise TooLarge(f"the {what} is too long: {len(text)} characters, at most {limit}; shorten it or split it")

    @staticmethod
    def _found(thread_id: str, thread: Thread | None) -> Thread:
        if thread is None:
            raise ThreadNotFound(thread_id)
        return thread

    async def record_refusal(
        self, thread_id: str, approval_id: str | None, user: Actor | str | None, reason: str, via: Via,
        *, refs: Sequence[Ref] = (),
    ) -> None:
        """Keep a refused decision in the thread for the audit trail (it changes nothing else).

        DuplicateRef when one of ``refs`` is known: the same request was already handled (a replay).
        """
        event = DecisionRefused(
            approval_id=approval_id, by=identity_of(user), by_person=self.person(user), reason=reason, via=via,
        )
        await self.journal.append_independent(thread_id, [event], refs=refs)
