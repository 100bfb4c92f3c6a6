"""The terminal as a channel (``opsgate chat``): type a request, watch the agent, approve or reject at the prompt."""

from __future__ import annotations

import asyncio
import getpass

import click

from bot.config import Settings
from bot.errors import Signal
from bot.events import (
    ActionProposed,
    ActionResult,
    AgentSelected,
    ApprovalDecided,
    ApprovalRequested,
    DecisionRefused,
    Done,
    ErrorEvent,
    Event,
    ExecutionStarted,
    HumanInputReceived,
    HumanInputRequested,
    UserMessage,
    Via,
)
from bot.people import acted
from bot.runtime import Loops
from bot.service import Service
from bot.thread import Thread
from bot.wiring import build_runtime, prepare_database

VIA = Via(channel="cli")


def describe_event(event: Event) -> str:
    """One readable line for an event."""
    when = f"{event.at:%H:%M:%S}"
    match event:
        case UserMessage() | HumanInputReceived():
            return f"{when}  {acted(event.user, event.person)}: {event.text}"
        case AgentSelected():
            return f"{when}  agent {event.agent} ({event.reason})"
        case ActionProposed():
            if event.name in ("done_for_now", "request_more_information"):
                return f"{when}  agent decided: {event.name}"
            args = " ".join(f"{k}={v}" for k, v in event.arguments.items())
            why = f"  — {event.reason}" if event.reason else ""
            return f"{when}  proposed: {event.name} {args}{why}"
        case ApprovalRequested():
            who = ", ".join(event.approvers) or "the local user"
            return f"{when}  waiting for approval of {event.summary or event.name} by {who}"
        case ApprovalDecided():
            verdict = "approved" if event.approved else "rejected"
            extra = f": {event.comment}" if event.comment else ""
            edits = "; ".join(f"{c.field} {c.old}->{c.new}" for c in event.changes)
            edited = f" (edited {edits})" if edits else ""
            return f"{when}  {verdict} by {acted(event.by, event.by_person)}{extra}{edited}"
        case DecisionRefused():
            return f"{when}  refused decision by {acted(event.by, event.by_person)}: {event.reason}"
        case ExecutionStarted():
            by = f" (approved by {acted(event.approved_by, event.approved_by_person)})" if event.approved_by else ""
            return f"{when}  executing {event.name}{by}"
        case ActionResult():
            return f"{when}  result of {event.name}{'' if event.ok else ' (failed)'}: {event.result}"
        case ErrorEvent():
            return f"{when}  error ({event.kind}): {event.message}"
        case HumanInputRequested():
            return f"{when}  question: {event.message}"
        case Done():
            return f"{when}  reply: {event.message}"
    return f"{when}  {event.type}"


async def _settle(service: Service, thread_id: str, shown: int) -> tuple[Thread, int]:
    """Print new events until the thread waits for a person or finishes."""
    while True:
        thread = await service.get_thread(thread_id)
        for event in thread.events[shown:]:
            click.echo(describe_event(event))
        shown = len(thread.events)
        if thread.status != "running":
            return thread, shown
        await asyncio.sleep(0.2)


async def _ask(prompt: str) -> str:
    return await asyncio.to_thread(click.prompt, prompt, default="", show_default=False)


async def _decide(service: Service, thread: Thread, user: str) -> None:
    pending = thread.pending
    assert pending is not None
    answer = (await _ask("approve? [y]es / [n]o (reject) / [e]dit")).strip().lower()
    try:
        if answer in ("y", "yes"):
            await service.decide(thread.id, pending.approval_id, approved=True, user=user, via=VIA)
        elif answer in ("n", "no"):
            reason = await _ask("reason")
            await service.decide(thread.id, pending.approval_id, approved=False, user=user, via=VIA,
                                 comment=reason or None)
        elif answer in ("e", "edit"):
            edits = {}
            for key, value in pending.arguments.items():
                new = await _ask(f"{key} [{value}]")
                if new:
                    edits[key] = new
            await service.decide(thread.id, pending.approval_id, approved=True, user=user, via=VIA,
                                 arguments=edits or None)
    except Signal as exc:
        click.echo(f"! {exc}")


async def run_chat(settings: Settings, *, agent: str | None, user: str | None) -> None:
    """The interactive loop; a worker runs in this process so no server is needed."""
    await prepare_database(settings)
    runtime = build_runtime(settings, channels=[])
    loops = Loops()
    loops.start(runtime.loops(outbox=False, channels=False))
    me = user or getpass.getuser()
    thread_id: str | None = None
    shown = 0
    click.echo(f"opsgate chat as {me}. Type a request (or !help); 'new' starts a new thread; Ctrl-D quits.")
    try:
        while True:
            try:
                text = (await asyncio.to_thread(input, "> ")).strip()
            except EOFError:
                break
            if not text:
                continue
            if text == "new":
                thread_id, shown = None, 0
                continue
            try:
                if thread_id is None:
                    thread = await runtime.service.start_thread(text, user=me, via=VIA, agent=agent)
                    thread_id = thread.id
                else:
                    await runtime.service.add_message(thread_id, text, user=me, via=VIA)
            except Signal as exc:
                click.echo(f"! {exc}")
                continue
            thread, shown = await _settle(runtime.service, thread_id, shown)
            while thread.status == "waiting_for_approval":
                await _decide(runtime.service, thread, me)
                thread, shown = await _settle(runtime.service, thread_id, shown)
            if thread.status in ("done", "failed"):
                thread_id, shown = None, 0
    finally:
        await loops.stop()
        await runtime.aclose()
