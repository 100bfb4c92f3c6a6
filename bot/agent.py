"""Agents: a prompt file, typed actions with their policies, and the tools that execute them (factor 10).

An agent lives in one folder under ``agents/`` and is registered in ``agents/__init__.py``; nothing in
``bot/`` or ``channels/`` changes when one is added.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import httpx

from bot.actions import INTENTS, Action, ActionSchema, action_schema
from bot.config import Settings
from bot.errors import UnknownAgent
from bot.store import Ledger


@dataclass(frozen=True)
class ToolContext:
    """What a tool may use: who asked and approved, a stable idempotency key, the ledger, an HTTP client."""

    thread_id: str
    action_id: str
    idempotency_key: str
    requester: str | None
    approved_by: str | None
    settings: Settings
    ledger: Ledger
    http: httpx.AsyncClient
    effects: list[str] = field(default_factory=list)

    def happened(self, summary: str) -> None:
        """Say the external side effect took place; if the tool fails after this, the result still says so."""
        self.effects.append(summary)
    # The intent was already recorded before this step began: a crash may have cut off an earlier run of the
    # tool after its side effect, so a tool talking to an outside system must look for that effect first.
    resumed: bool = False


Tool = Callable[[Action, ToolContext], Awaitable[str]]


@dataclass(frozen=True)
class Agent:
    """One focused agent."""

    name: str
    description: str
    prompt_path: Path
    tools: Mapping[type[Action], Tool] = field(default_factory=dict)
    # Checks the agent's own settings at start (ConfigError stops the start) and returns what an operator
    # must know about them (logged as start-up warnings).
    configure: Callable[[Settings], list[str]] | None = None

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

    @cached_property
    def schemas(self) -> tuple[ActionSchema, ...]:
        """The tools offered to the model, built once (pydantic schema generation is not cheap)."""
        return tuple(action_schema(a) for a in self.actions)


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
