"""Threads started by events instead of people: Alertmanager notifications and any system's JSON (factor 11).

``POST /hooks/alertmanager`` takes Alertmanager's webhook (version 4): one thread per alert group, every new
notification of the group appended to it, repeats recorded once. ``POST /hooks/{agent}`` takes a JSON object for
one agent (``message``, optional ``group`` to continue a thread, optional ``Idempotency-Key`` header).

Both need ``Authorization: Bearer $OPSGATE_HOOK_TOKEN`` (Alertmanager sends it with ``http_config.authorization``;
it cannot sign bodies, so a bearer token it is), are read only up to OPSGATE_HOOK_MAX_BYTES, and are
de-duplicated by a ref written in the same transaction as the message. A thread a trigger starts lives in
OPSGATE_TRIGGER_SLACK_CHANNEL when that is set, so people follow, answer and approve there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

import structlog
from pydantic import BaseModel

from bot.alertmanager import SOURCE
from bot.config import Settings
from bot.errors import DuplicateRef, NotWaiting
from bot.events import UserMessage, Via, new_id
from bot.people import identity_of
from bot.service import Service
from bot.store import Ref
from bot.thread import Thread

log = structlog.get_logger("opsgate.triggers")

DEDUP_REF = "hook"  # one per accepted delivery: a repeat finds it and changes nothing
GROUP_REF = "hook-group"  # a trigger's group (alert group, generic group) -> its thread

Outcome = Literal["started", "continued", "duplicate"]


class Accepted(BaseModel):
    """What a hook did with a delivery."""

    thread_id: str
    outcome: Outcome


TRIGGER_PREFIXES = ("hook:", "schedule:")


def started_by_trigger(thread: Thread) -> bool:
    """Whether a hook, a schedule or an Alertmanager notification started ``thread`` (its requester is the
    trigger's source name, never a person's identity)."""
    requester = thread.requester or ""
    return requester == SOURCE or requester.startswith(TRIGGER_PREFIXES)


class Triggers:
    """Starts or continues threads for triggers (hooks and schedules) through the Service, like any channel."""

    def __init__(self, settings: Settings, service: Service) -> None:
        self.settings = settings
        self.service = service

    def via(self, source: str) -> Via:
        """Where a triggered thread lives: the configured Slack channel (people follow it there) or nowhere."""
        if self.settings.trigger_slack_channel and self.settings.slack_enabled:
            return Via(channel="slack", conversation=self.settings.trigger_slack_channel)
        return Via(channel="hook", conversation=source)

    async def deliver(
        self, *, agent: str, source: str, text: str, delivery: str, group: str | None,
        prepare: Callable[[str], Awaitable[None]] | None = None,
    ) -> Accepted:
        """Start the group's thread, or append to it; a delivery seen before changes nothing. ``prepare`` runs with
        the thread's id before its message is stored: the worker may take the thread up at once, and what the
        agent reads first (an alert's details) must already be there."""
        self.service.registry.get(agent)  # UnknownAgent before anything is stored
        dedup = Ref(channel=DEDUP_REF, key=f"{source}:{delivery}")
        group_ref = Ref(channel=GROUP_REF, key=f"{source}:{group}") if group else None
        for _ in range(3):  # a concurrent first delivery of the same group may create the thread under us
            seen = await self.service.store.get_ref(dedup.channel, dedup.key)
            if seen is not None and seen.thread_id:
                return Accepted(thread_id=seen.thread_id, outcome="duplicate")
            known = await self.service.store.get_ref(group_ref.channel, group_ref.key) if group_ref else None
            try:
                if known is not None and known.thread_id:
                    if prepare is not None:
                        await prepare(known.thread_id)
                    await self._continue(known.thread_id, text, source, dedup)
                    return Accepted(thread_id=known.thread_id, outcome="continued")
                thread_id = new_id()
                if prepare is not None:
                    await prepare(thread_id)
                thread = await self.service.start_thread(
                    text, user=source, via=self.via(source), agent=agent,
                    refs=[r for r in (group_ref, dedup) if r is not None], thread_id=thread_id)
                log.info("trigger_started", source=source, agent=agent, thread_id=thread.id)
                return Accepted(thread_id=thread.id, outcome="started")
            except DuplicateRef:
                continue
        raise DuplicateRef(f"{source} delivery {delivery} kept colliding; retry it")

    async def _continue(self, thread_id: str, text: str, source: str, dedup: Ref) -> None:
        via = Via(channel="hook", conversation=source)
        try:
            await self.service.add_message(thread_id, text, user=source, via=via, refs=[dedup])
        except NotWaiting:  # waiting for an approval: keep the news in the thread all the same
            message = UserMessage(text=text, user=identity_of(source), via=via)
            await self.service.journal.append_independent(thread_id, [message], refs=[dedup])


def alert_agent(service: Service, settings: Settings) -> str:
    """The agent for Alertmanager: OPSGATE_ALERT_AGENT, else the one that declares it handles alerts."""
    if settings.alert_agent:
        return settings.alert_agent
    handlers = [a.name for a in service.registry if a.alerts]
    return handlers[0] if handlers else service.registry.default
