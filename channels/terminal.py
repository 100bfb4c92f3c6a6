"""The terminal as a channel (``opsgate chat``): type a request, watch the agent, approve or reject at the prompt."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import threading

import click

from bot.actions import action_schema
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
    ProposalBlocked,
    UserMessage,
    Via,
)
from bot.field_help import field_hint
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
        case ProposalBlocked():
            return f"{when}  stopped by the {event.rule} rule: {event.reason}"
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


async def _read_line(prompt: str) -> str:
    """``input(prompt)`` without blocking the loop, in a daemon thread so Ctrl-C can end the program at once.

    (``asyncio.to_thread`` would use the default executor, which ``asyncio.run`` waits for on exit: Ctrl-C then
    hung until Enter was pressed.) EOFError comes through as itself (Ctrl-D).
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def settle(value: str | None, error: BaseException | None) -> None:
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(value or "")

    def read() -> None:
        try:
            value, error = input(prompt), None
        except (EOFError, OSError, ValueError) as exc:
            value, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: the program is exiting
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=read, name="chat-input", daemon=True).start()
    return await answer


async def _ask(prompt: str) -> str:
    return (await _read_line(f"{prompt}: ")).strip()


def _hint(service: Service, thread: Thread, name: str, key: str) -> str:
    """What the field accepts, from the action's schema (empty when unknown)."""
    agent = service.registry.get(thread.agent or service.registry.default)
    action = agent.action(name)
    prop = action_schema(action).parameters.get("properties", {}).get(key) if action else None
    return field_hint(prop) if prop else ""


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
                hint = _hint(service, thread, pending.action, key)
                new = await _ask(f"{key} [{value}]{f' ({hint})' if hint else ''}")
                if new:
                    edits[key] = new
            await service.decide(thread.id, pending.approval_id, approved=True, user=user, via=VIA,
                                 arguments=edits or None)
    except Signal as exc:
        click.echo(f"! {exc}")


async def run_chat(settings: Settings, *, agent: str | None, user: str | None) -> None:
    """The interactive loop; a worker runs in this process so no server is needed. Ctrl-C or Ctrl-D ends it."""
    await prepare_database(settings)
    runtime = build_runtime(settings, channels=[])
    loops = Loops()
    loops.start(runtime.loops(outbox=False, channels=False))
    me = user or getpass.getuser()
    click.echo(f"opsgate chat as {me}. Type a request (or !help); 'new' starts a new thread; Ctrl-C or Ctrl-D quits.")
    try:
        await _converse(runtime.service, me, agent)
    except EOFError:
        pass
    finally:
        click.echo("\nbye")
        await loops.stop()
        await runtime.aclose()


async def _converse(service: Service, me: str, agent: str | None) -> None:
    """Read requests and answers until end of input (EOFError)."""
    thread_id: str | None = None
    shown = 0
    while True:
        text = (await _read_line("> ")).strip()
        if not text:
            continue
        if text == "new":
            thread_id, shown = None, 0
            continue
        try:
            if thread_id is None:
                thread = await service.start_thread(text, user=me, via=VIA, agent=agent)
                thread_id = thread.id
            else:
                await service.add_message(thread_id, text, user=me, via=VIA)
        except Signal as exc:
            click.echo(f"! {exc}")
            continue
        thread, shown = await _settle(service, thread_id, shown)
        while thread.status == "waiting_for_approval":
            await _decide(service, thread, me)
            thread, shown = await _settle(service, thread_id, shown)
        if thread.status in ("done", "failed"):
            thread_id, shown = None, 0
