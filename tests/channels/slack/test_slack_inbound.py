"""Slack messages -> threads through the real service and a real SQLite store (no HTTP, no worker)."""

from __future__ import annotations

import asyncio

from bot.events import HumanInputReceived, UserMessage
from bot.runtime import Runtime
from channels.slack.slack_delivery import THREAD_REF
from channels.slack.slack_inbound import EVENT_REF, Incoming, receive
from tests.channels.slack.conftest import waiting_deploy

ROOT = "1732270000.000100"


def said(text: str, *, event_id: str, ts: str = ROOT, root_ts: str = ROOT, addressed: bool = True,
         channel: str = "C0OPS0001", user: str = "UALICE01") -> Incoming:
    return Incoming(event_id=event_id, channel=channel, user=user, text=text, ts=ts, root_ts=root_ts,
                    addressed=addressed)


async def test_mention_starts_a_thread_mapped_to_the_slack_thread(runtime: Runtime) -> None:
    """A new mention starts a thread whose origin is the Slack thread; refs map it and its event id."""
    received = await receive(said("deploy api", event_id="Ev1"), runtime.service)
    assert received.outcome == "started" and received.thread_id
    thread = await runtime.service.get_thread(received.thread_id)
    first = thread.first_message
    assert first is not None and (first.text, first.user) == ("deploy api", "UALICE01")
    assert (first.via.channel, first.via.conversation, first.via.message) == ("slack", "C0OPS0001", ROOT)
    mapped = await runtime.store.get_ref(THREAD_REF, f"C0OPS0001:{ROOT}")
    event = await runtime.store.get_ref(EVENT_REF, "Ev1")
    assert mapped is not None and mapped.thread_id == thread.id
    assert event is not None and event.thread_id == thread.id


async def test_retried_delivery_changes_nothing(runtime: Runtime) -> None:
    """The same event id again (Slack's retry) is a duplicate: one thread, one message."""
    first = await receive(said("deploy api", event_id="Ev1"), runtime.service)
    again = await receive(said("deploy api", event_id="Ev1"), runtime.service)
    assert again.outcome == "duplicate"
    assert len(await runtime.service.list_threads()) == 1
    thread = await runtime.service.get_thread(first.thread_id or "")
    assert sum(isinstance(e, UserMessage) for e in thread.events) == 1


async def test_concurrent_retries_make_one_thread(runtime: Runtime) -> None:
    """Two deliveries of one event racing each other: exactly one is stored."""
    results = await asyncio.gather(*(receive(said("deploy", event_id="Ev1"), runtime.service) for _ in range(4)))
    assert sorted(r.outcome for r in results) == ["duplicate", "duplicate", "duplicate", "started"]
    assert len(await runtime.service.list_threads()) == 1


async def test_two_messages_racing_into_a_new_slack_thread_share_one_thread(runtime: Runtime) -> None:
    """Different events for the same new Slack thread: one starts it, the other continues it."""
    results = await asyncio.gather(
        receive(said("deploy api", event_id="Ev1"), runtime.service),
        receive(said("to staging", event_id="Ev2", ts="1732270001.000100"), runtime.service),
    )
    assert sorted(r.outcome for r in results) == ["continued", "started"]
    [summary] = await runtime.service.list_threads()
    thread = await runtime.service.get_thread(summary.id)
    assert [e.text for e in thread.events if isinstance(e, UserMessage)] in (
        ["deploy api", "to staging"], ["to staging", "deploy api"])


async def test_reply_in_the_slack_thread_continues_it(runtime: Runtime) -> None:
    """A later message in the same Slack thread (mention or plain reply) is added to the same thread."""
    started = await receive(said("deploy api", event_id="Ev1"), runtime.service)
    reply = said("version 1.4.3", event_id="Ev2", ts="1732270100.000300", addressed=False)
    continued = await receive(reply, runtime.service)
    assert continued.outcome == "continued" and continued.thread_id == started.thread_id
    thread = await runtime.service.get_thread(started.thread_id or "")
    last = thread.events[-1]
    assert isinstance(last, UserMessage | HumanInputReceived) and last.text == "version 1.4.3"
    assert last.via.message == "1732270100.000300"


async def test_unaddressed_message_in_an_unknown_thread_is_ignored(runtime: Runtime) -> None:
    """Chatter in a Slack thread opsgate does not own starts nothing."""
    received = await receive(said("lunch?", event_id="Ev1", addressed=False), runtime.service)
    assert received.outcome == "ignored"
    assert await runtime.service.list_threads() == []


async def test_message_while_waiting_for_approval_gets_a_private_note(runtime: Runtime) -> None:
    """While the thread waits for a decision, a message is not added; the author is told privately, once."""
    thread = await waiting_deploy(runtime)
    received = await receive(said("any news?", event_id="Ev9", ts="1732270200.000100"), runtime.service)
    assert received.outcome == "waiting" and received.thread_id == thread.id
    assert received.notice is not None and "Approve / Reject" in received.notice
    assert (await runtime.service.get_thread(thread.id)).events == thread.events
    again = await receive(said("any news?", event_id="Ev9", ts="1732270200.000100"), runtime.service)
    assert again.outcome == "duplicate"
