"""The agent step (factor 12): load the thread, decide the next unit of work from it, do it, append events.

Nothing is kept in memory between steps; any worker can advance any thread. Side effects (model calls, tools)
happen here at the edge; deciding what they mean is done by the pure functions in thread, parsing and policy.
"""

from __future__ import annotations

import time

import httpx
import structlog
from pydantic import ValidationError

from bot.actions import Action
from bot.agent import Agent, AgentContext, AgentRecords, Registry, Tool, ToolContext, ToolSettings
from bot.approvals import describe_validation
from bot.commands import Proposal, interpret, no_model_reply
from bot.config import Settings
from bot.errors import Conflict, ExecutionFailed, ModelRefused, new_error_id
from bot.events import (
    ActionProposed,
    ActionResult,
    ContextFetched,
    Done,
    ErrorEvent,
    Event,
    ExecutionStarted,
)
from bot.journal import Journal
from bot.llm import ChatModel
from bot.model_step import model_step
from bot.policy import gate
from bot.proposals import attribute
from bot.routing import choose_agent
from bot.store import Store
from bot.thread import Thread
from bot.work import CallModel, Execute, Finish, Route, RunCommand, Wait

log = structlog.get_logger("opsgate.engine")


class Engine:
    """Advances threads one unit of work at a time until they wait for a person or finish."""

    def __init__(
        self, settings: Settings, store: Store, registry: Registry, journal: Journal,
        model: ChatModel | None, http: httpx.AsyncClient,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.journal = journal
        self.model = model
        self.http = http
        self._tool_settings: dict[str, ToolSettings] = {}

    async def advance(self, thread_id: str) -> Thread | None:
        """Run the thread until it waits; raises ModelUnavailable when the model is down (retried later)."""
        thread, _ = await self.advance_claimed(thread_id)
        return thread

    async def advance_claimed(self, thread_id: str, known: Thread | None = None) -> tuple[Thread | None, bool]:
        """``advance``, also saying whether our own append made the thread wait (which dropped the lease).

        ``known`` is the thread as stored when the caller leased it, if it has it (then it is not read again).
        """
        thread: Thread | None = known
        answered: list[Event] | None = None  # a model answer whose append lost to an annotation: still valid
        for _ in range(self.settings.max_steps * 4 + 8):
            if thread is None:  # first round, or someone else appended: read the stored thread
                thread = await self.store.load_thread(thread_id)
                if thread is None:
                    return None, False
            work, seen = thread.next_work(), thread.seq
            if isinstance(work, Wait):
                return thread, False
            try:
                if isinstance(work, Execute):
                    thread = await self._execute(thread, work)
                    continue
                if isinstance(work, Route):
                    events = await self._route(thread)
                elif isinstance(work, RunCommand):
                    events = self._command(thread, work.text)
                elif isinstance(work, Finish):
                    events = [Done(message=work.message)]
                else:
                    assert isinstance(work, CallModel)
                    agent = self._agent(thread)
                    if answered is not None:
                        events = answered
                    elif agent.prefetch is not None and not thread.fetched_for(agent.name):
                        events = [await self._prefetch(thread, agent)]  # then the model call, with it in context
                    else:
                        events = await self._call_model(thread)
                answered = None
                thread = await self.journal.append(thread, events, owned=True)  # ours won: no need to reload
                if thread.status != "running":
                    return thread, True  # waiting now: our lease was dropped with this append, so stop here
            except Conflict:
                thread = await self.store.load_thread(thread_id)  # someone appended meanwhile
                if thread is None:
                    return None, False
                if isinstance(work, CallModel) and thread.only_annotations_after(seen):
                    # Only a refused click or a note landed: the model's answer still stands; append it on top
                    # instead of asking (and paying for) the model again.
                    answered = events
        return thread, False

    def _agent(self, thread: Thread) -> Agent:
        return self.registry.get(thread.agent or self.registry.default)

    def tool_settings(self, agent: Agent) -> ToolSettings:
        """What ``agent``'s code may read: its own variables and the webhook secret, no channel secrets."""
        found = self._tool_settings.get(agent.name)
        if found is None:
            found = self._tool_settings[agent.name] = ToolSettings.of(self.settings, agent.settings)
        return found

    def _context(self, thread: Thread, agent: Agent) -> AgentContext:
        return AgentContext(thread_id=thread.id, settings=self.tool_settings(agent),
                            records=AgentRecords(self.store, agent.name), http=self.http)

    async def _prefetch(self, thread: Thread, agent: Agent) -> ContextFetched:
        """The agent's pre-fetched context, once per thread; a failure is noted and the agent goes on without."""
        assert agent.prefetch is not None
        try:
            text = await agent.prefetch(thread, self._context(thread, agent))
        except Exception as exc:  # an unreachable source must not stop the thread: the model is told what is missing
            error_id = new_error_id()
            log.exception("prefetch_failed", thread_id=thread.id, agent=agent.name, error_id=error_id)
            return ContextFetched(agent=agent.name, ok=False,
                                  text=f"fetching context failed ({type(exc).__name__}, error id {error_id})")
        return ContextFetched(agent=agent.name, text=text or "nothing to fetch for this request")

    async def _route(self, thread: Thread) -> list[Event]:
        selected = await choose_agent(thread, self.registry, self.model)
        return [selected]

    def _command(self, thread: Thread, text: str) -> list[Event]:
        agent = self._agent(thread)
        outcome = interpret(text, agent, self.registry)
        if isinstance(outcome, Proposal):
            action = outcome.action
            proposal = ActionProposed(
                name=action.name, arguments=action.model_dump(mode="json"), source="command",
                reason=outcome.reason or "explicit command",
            )
            return attribute(gate(proposal, action, self.settings, thread.requester, thread.requester_person,
                                  agent), thread, by_command=True)
        return [Done(message=outcome.message)]

    async def _call_model(self, thread: Thread) -> list[Event]:
        if thread.steps_since_human >= self.settings.max_steps:
            return [ErrorEvent(
                kind="step_limit",
                message=f"stopped after {self.settings.max_steps} steps without finishing (OPSGATE_MAX_STEPS); "
                        "send a new message to continue",
            )]
        if self.model is None:
            return [Done(message=no_model_reply(self.registry))]
        try:
            step = await model_step(thread, self._agent(thread), self.model, self.settings)
        except ModelRefused as exc:  # a configuration problem a person must see, not an outage to wait out
            return [ErrorEvent(kind="model", message=f"{exc}; fix the model settings and send a new message")]
        return step.events

    async def _execute(self, thread: Thread, work: Execute) -> Thread | None:
        """Record the intent (idempotency key) before the side effect, then run the tool once, then the result."""
        agent = self._agent(thread)
        started = work.started
        if started is None:
            started = ExecutionStarted(
                action_id=work.action_id, name=work.name, arguments=work.arguments,
                idempotency_key=f"{thread.id}:{work.action_id}", approved_by=work.approved_by,
                approved_by_person=thread.approver_person(work.action_id),
            )
            thread = await self.journal.append(thread, [started], owned=True)  # Conflict: someone else was first
        action_type = agent.action(work.name)
        tool = agent.tool(action_type) if action_type else None
        began = time.perf_counter()
        ok, text = False, ""
        if action_type is None or tool is None:
            text = f"agent {agent.name} has no tool for {work.name}"
        else:
            try:
                action = action_type.model_validate(work.arguments)
            except ValidationError as exc:
                text = f"invalid arguments: {describe_validation(exc)}"
            else:
                lent = action_type.owner in self.registry.names and action_type.owner != agent.name
                owner = self.registry.get(action_type.owner) if lent and action_type.owner else agent
                context = ToolContext(
                    thread_id=thread.id, action_id=work.action_id, idempotency_key=started.idempotency_key,
                    requester=thread.requester, approved_by=work.approved_by, settings=self.tool_settings(owner),
                    records=AgentRecords(self.store, owner.name), http=self.http,
                    resumed=work.started is not None,
                )
                text, ok = await self._run_tool(tool, action, context, work.name)
        result = ActionResult(
            action_id=work.action_id, name=work.name, ok=ok, result=text,
            latency_ms=int((time.perf_counter() - began) * 1000),
        )
        # The result must never be lost to a concurrent append (a refused click, a delivery note): losing it
        # would make the thread look crashed mid-execution and run the tool again.
        return await self.journal.append_independent(thread.id, [result], known=thread, owned=True)

    async def _run_tool(self, tool: Tool, action: Action, context: ToolContext, name: str) -> tuple[str, bool]:
        """The tool's text and whether it succeeded; a side effect it reported as done stays done.

        A tool's own failure (ExecutionFailed) is written for people and shown as it is. Anything else is ours
        (a database error, a bug): people get an error id to quote, the log gets the details with the same id.
        """
        try:
            return await tool(action, context), True
        except ExecutionFailed as exc:
            log.warning("tool_failed", thread_id=context.thread_id, action=name, error=str(exc))
            failure, error_id = f"{type(exc).__name__}: {exc}", None
        except Exception:
            error_id = new_error_id()
            log.exception("tool_error", thread_id=context.thread_id, action=name, error_id=error_id,
                          idempotency_key=context.idempotency_key, effects=context.effects)
            failure = f"internal error (error id {error_id}); the details are in opsgate's log"
        if not context.effects:
            return failure, False
        # The external call went through: report what happened, never a failure that invites running it again.
        note = f"error id {error_id}" if error_id else failure
        return f"{'; '.join(context.effects)} (a local step after it failed: {note}; nothing was repeated)", True
