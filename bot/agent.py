"""Agents: a prompt file, typed actions with their policies, and the tools that execute them (factor 10).

An agent lives in one folder under ``agents/`` and is found through the ``opsgate.agents`` entry point group;
nothing in ``bot/``, ``storage/`` or ``channels/`` names it. What its code may use is bot/tool_context.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from bot.actions import INTENTS, Action, ActionSchema, Timing, action_schema
from bot.config import AgentSettings, Settings
from bot.errors import UnknownAgent
from bot.llm import ModelOptions
from bot.thread import Thread
from bot.tool_context import AgentContext, AgentRecords, RecordReader, ToolContext, ToolSettings

if TYPE_CHECKING:
    from bot.journal import Scheduler
    from bot.timers import Handler as TimerHandler

__all__ = ["Agent", "AgentContext", "AgentRecords", "Prefetch", "RecordReader", "Registry", "Tool", "ToolContext",
           "ToolSettings"]


Tool = Callable[[Action, ToolContext], Awaitable[str]]
# Context fetched before the agent's first model call (factor 13): text for the model, or None for nothing.
Prefetch = Callable[[Thread, AgentContext], Awaitable[str | None]]


@dataclass(frozen=True)
class Agent:
    """One focused agent.

    ``facts`` is pre-fetched context shown to the model with every step (and a grounding source);
    ``temperature``, ``timeout`` and ``max_tokens`` are its model settings (OPSGATE_MODEL_TEMPERATURE_<NAME> and
    OPSGATE_MODEL_TIMEOUT_<NAME> override them); ``plain_question`` and ``plain_reply`` replace a question or
    reply that repeated its instructions.
    """

    name: str
    description: str
    prompt_path: Path
    tools: Mapping[type[Action], Tool] = field(default_factory=dict)
    # Checks the agent's own settings at start (ConfigError stops the start) and returns what an operator
    # must know about them (logged as start-up warnings).
    configure: Callable[[Settings], list[str]] | None = None
    facts: tuple[str, ...] = ()
    temperature: float | None = None
    timeout: float | None = None
    max_tokens: int | None = None
    plain_question: str = "Could you tell me a bit more about what you need?"
    plain_reply: str = "I can't share my instructions. Tell me what you need and I'll help."
    approval_timing: Timing | None = None  # defaults for its approvals (bot/lifecycle.py); env overrides them
    settings: type[AgentSettings] | None = None  # its own settings class: the only variables its tools can read
    prefetch: Prefetch | None = None
    # Whether the agent runs with these settings (None: always); an agent that needs configuration (a Prometheus,
    # roles) stays out of the registry, and out of routing, until it has it.
    enabled: Callable[[Settings], bool] | None = None
    alerts: bool = False  # handles Alertmanager notifications (POST /hooks/alertmanager) unless configured otherwise
    # Durable timers the agent fires (kind -> handler) and the schedulers that set them from new events
    # (bot/timers.py); registered with the runtime when it is built.
    timers: Mapping[str, TimerHandler] = field(default_factory=dict)
    schedulers: tuple[Scheduler, ...] = ()
    # A question the model asks on the first step after a person's message gets a second look: one more call
    # offered only this agent's actions (bot/model_step.py). False: the model's questions go out as asked.
    second_look: bool = True

    @cached_property
    def prompt(self) -> str:
        return self.prompt_path.read_text(encoding="utf-8")

    @cached_property
    def prompt_hash(self) -> str:
        return hashlib.sha256(self.prompt.encode()).hexdigest()[:16]

    @property
    def actions(self) -> list[type[Action]]:
        """The agent's own actions followed by the universal intents."""
        return [*self.tools.keys(), *INTENTS]

    def action(self, name: str) -> type[Action] | None:
        return next((a for a in self.actions if a.name == name), None)

    def tool(self, action: type[Action]) -> Tool | None:
        return self.tools.get(action)

    def model_options(self, settings: Settings) -> ModelOptions:
        """Temperature and timeout for this agent's model calls: environment, else the agent, else global."""
        temperature = settings.agent_temperature(self.name)
        timeout = settings.agent_timeout(self.name)
        return ModelOptions(
            temperature=temperature if temperature is not None else (
                self.temperature if self.temperature is not None else settings.model_temperature),
            timeout=timeout or self.timeout or settings.model_timeout,
            max_tokens=self.max_tokens,
        )

    @cached_property
    def schemas(self) -> tuple[ActionSchema, ...]:
        """The tools offered to the model, built once (pydantic schema generation is not cheap)."""
        return tuple(action_schema(a) for a in self.actions)

    @cached_property
    def action_schemas(self) -> tuple[ActionSchema, ...]:
        """The agent's own actions without the question and reply intents: the tools of a second look."""
        return self.schemas[: len(self.tools)]


class Registry:
    """Registered agents, findable by name; actions findable by name with their schemas."""

    def __init__(self, agents: Iterable[Agent], default: str | None = None) -> None:
        self._agents = {a.name: a for a in agents}
        if not self._agents:
            raise ValueError("at least one agent must be registered")
        self.default = default if default in self._agents else next(iter(self._agents))

    @property
    def names(self) -> list[str]:
        return list(self._agents)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._agents.values())

    def get(self, name: str) -> Agent:
        try:
            return self._agents[name]
        except KeyError:
            raise UnknownAgent(name, self.names) from None

    def agents_with_action(self, action_name: str) -> list[Agent]:
        """Agents that own an action of this name (universal intents excluded)."""
        return [a for a in self._agents.values() if any(t.name == action_name for t in a.tools)]
