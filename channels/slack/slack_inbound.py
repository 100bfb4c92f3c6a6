"""Slack messages and slash commands -> service calls, as a pipeline of small steps.

ignore (bots, edits, chatter not addressed to us) -> dedupe (event id) -> resolve thread (channel:root ts)
-> start or continue. The write is one transaction holding the event-id ref, so a retried delivery
(same ``event_id``, ``X-Slack-Retry-Num``) finds it and changes nothing; the ack follows the write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import structlog

from bot.errors import DuplicateRef, NotWaiting, ThreadNotFound
from bot.events import Via
from bot.service import Service
from bot.store import Ref
from channels.slack.limits import fit_escaped
from channels.slack.slack_delivery import THREAD_REF, thread_key
from channels.slack.slack_payloads import EventCallback, SlashCommand, clean_text, mentions
from channels.slack.users import ActorLookup, id_only

log = structlog.get_logger("opsgate.slack")

EVENT_REF = "slack-event"
CHANNEL = "slack"
HELP = "!help"
ECHO = 500  # characters of a slash command quoted back to its author


@dataclass(frozen=True)
class Incoming:
    """A person's words from Slack, ready for the service."""

    event_id: str
    channel: str
    user: str
    text: str
    ts: str
    root_ts: str
    addressed: bool  # a mention or a DM: may start a thread; anything else may only continue one


Outcome = Literal["started", "continued", "duplicate", "ignored", "waiting"]


@dataclass(frozen=True)
class Received:
    """What became of an event, and what (if anything) to tell its author privately."""

    outcome: Outcome
    thread_id: str | None = None
    notice: str | None = None


def incoming(envelope: EventCallback, bot_user_id: str | None) -> Incoming | None:
    """The message to act on, or None for what we never answer (bots, ourselves, edits, joins)."""
    event = envelope.event
    if not event.from_person or event.user is None:
        return None
    bot = bot_user_id or envelope.bot_user_id
    if bot is not None and event.user == bot:
        return None
    if event.type == "message" and not event.is_dm and bot is not None and mentions(event.text, bot):
        return None  # Slack sends this one again as app_mention; that copy is the one we handle
    addressed = event.type == "app_mention" or event.is_dm
    text = clean_text(event.text, bot)
    if not text:
        if not addressed:
            return None
        text = HELP  # "@opsgate" alone: say what it can do
    return Incoming(
        event_id=envelope.event_id, channel=event.channel, user=event.user, text=text, ts=event.ts,
        root_ts=event.root_ts, addressed=addressed,
    )


async def receive(message: Incoming, service: Service, actor_of: ActorLookup = id_only) -> Received:
    """Start or continue the opsgate thread of this Slack thread; idempotent per event id.

    ``actor_of`` (the author's Slack-reported email) is only asked for a message that starts or continues one.
    """
    store = service.store
    event_ref = Ref(channel=EVENT_REF, key=message.event_id)
    if await store.get_ref(EVENT_REF, message.event_id) is not None:
        return Received("duplicate")
    key = thread_key(message.channel, message.root_ts)
    for _ in range(2):  # a second pass when another message created this Slack thread's opsgate thread first
        known = await store.get_ref(THREAD_REF, key)
        try:
            if known is not None and known.thread_id is not None:
                return await _continue(message, service, known.thread_id, event_ref, actor_of)
            if not message.addressed:
                return Received("ignored")
            thread = await service.start_thread(
                message.text, user=await actor_of(message.user),
                # the root ts, not this message's: it is where every reply of the thread goes
                via=Via(channel=CHANNEL, conversation=message.channel, message=message.root_ts),
                refs=[Ref(channel=THREAD_REF, key=key), event_ref],
            )
            log.info("slack_thread_started", thread_id=thread.id, channel=message.channel, user=message.user)
            return Received("started", thread.id)
        except DuplicateRef:
            if await store.get_ref(EVENT_REF, message.event_id) is not None:
                return Received("duplicate")
    raise DuplicateRef(f"Slack thread {key} changed twice while handling event {message.event_id}")


async def _continue(
    message: Incoming, service: Service, thread_id: str, event_ref: Ref, actor_of: ActorLookup
) -> Received:
    via = Via(channel=CHANNEL, conversation=message.channel, message=message.ts)
    try:
        thread = await service.add_message(
            thread_id, message.text, user=await actor_of(message.user), via=via, refs=[event_ref]
        )
    except NotWaiting as exc:
        # The thread waits for a decision: say so privately; remember the event so a retry stays quiet.
        await service.store.put_ref(event_ref.model_copy(update={"thread_id": thread_id}))
        log.info("slack_message_while_waiting", thread_id=thread_id, user=message.user)
        return Received("waiting", thread_id, f"I'm waiting for a decision on this thread first "
                                              f"({fit_escaped(str(exc), 500)}). "
                                              "Use the Approve / Reject buttons on the approval card.")
    except ThreadNotFound:
        log.warning("slack_thread_ref_dangling", thread_id=thread_id, channel=message.channel)
        return Received("ignored", thread_id)
    return Received("continued", thread.id)


# --- /opsgate -----------------------------------------------------------------------------------------------


def command_text(text: str) -> str:
    """``/opsgate deploy service=api`` -> ``!deploy service=api``; empty or ``help`` -> ``!help``."""
    words = " ".join(text.split())
    if not words or words.lower() in ("help", "?", "!help"):
        return HELP
    return words if words.startswith("!") else f"!{words}"


async def run_command(
    command: SlashCommand, service: Service, actor_of: ActorLookup = id_only, refs: Sequence[Ref] = (),
) -> tuple[str, str]:
    """Start a thread for a slash command; returns (thread id, the ephemeral answer to the command).

    ``refs`` (the request's replay guard) are stored with the thread: DuplicateRef when it was already handled.
    """
    text = command_text(command.text)
    thread = await service.start_thread(
        text, user=await actor_of(command.user_id),
        via=Via(channel=CHANNEL, conversation=command.channel_id, message=None), refs=refs,
    )
    log.info("slack_command", thread_id=thread.id, channel=command.channel_id, user=command.user_id,
             text=text[:200])
    echo = fit_escaped(text.replace("`", "'"), ECHO)
    return thread.id, f"On it: `{echo}`. I'll answer in a thread in this channel."
