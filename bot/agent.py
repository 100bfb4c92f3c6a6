"""Agents: a prompt file, typed actions with their policies, and the tools that execute them (factor 10).

An agent lives in one folder under ``agents/`` and is registered in ``agents/__init__.py``; nothing in
``bot/`` or ``channels/`` changes when one is added.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from bot.actions import INTENTS, Action, ActionSchema, action_schema
from bot.config import AgentSettings, Settings, read_agent_settings
from bot.errors import UnknownAgent
from bot.events import utcnow
from bot.store import Record, Records
from bot.thread import Thread

if TYPE_CHECKING:
    from bot.journal import Scheduler
    from bot.timers import Handler as TimerHandler

A = TypeVar("A", bound=AgentSettings)


@dataclass(frozen=True)
class ToolSettings:
    """The settings a tool may read: one agent's own variables and the outgoing-webhook signing secret.

    Never the core settings (no Slack, IMAP, SMTP or database secrets) and never another agent's variables.
    """

    environ: Mapping[str, str] = field(default_factory=dict)  # the variables with the agent's prefix only
    webhook_secret: str | None = None
    scope: type[AgentSettings] | None = None  # the one settings class these variables are for
    _cache: dict[type, AgentSettings] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, settings: Settings, model: type[AgentSettings] | None) -> ToolSettings:
        """The slice of ``settings`` that ``model``'s agent may read."""
        prefix = model.env_prefix if model is not None else None
        environ = {k: v for k, v in settings.agent_environ.items() if prefix and k.startswith(prefix)}
        return cls(environ=environ, webhook_secret=settings.webhook_secret, scope=model)

    def agent(self, model: type[A]) -> A:
        """The agent's own settings, read once; ConfigError names a bad variable."""
        if model is not self.scope:
            raise PermissionError(f"{model.__name__} belongs to another agent; a tool reads only its agent's own")
        found = self._cache.get(model)
        if found is None:
            found = self._cache[model] = read_agent_settings(model, self.environ)
        assert isinstance(found, model)
        return found


class RecordReader:
    """Read one owner's records (another agent's public data goes through that agent's own functions)."""

    def __init__(self, store: Records, owner: str) -> None:
        self._store = store
        self.owner = owner

    async def get(self, kind: str, key: str) -> Record | None:
        return await self._store.get_record(self.owner, kind, key)

    async def list(self, kind: str, *, tag: str | None = None, limit: int = 50) -> list[Record]:
        """Newest first, optionally only those tagged ``tag``."""
        return await self._store.list_records(self.owner, kind, tag=tag, limit=limit)


class AgentRecords(RecordReader):
    """An agent's own records: it writes only its own, and reads others' through ``of``."""

    async def add(self, kind: str, key: str, body: dict[str, Any], *, tag: str | None = None,
                  at: datetime | None = None) -> bool:
        """Insert; False (nothing written) when the key is already there: the idempotent write."""
        record = Record(owner=self.owner, kind=kind, key=key, tag=tag, body=body, at=at or utcnow())
        return await self._store.add_record(record)

    async def replace(self, old: Record | None, body: dict[str, Any], *, kind: str = "", key: str = "",
                      tag: str | None = None) -> bool:
        """Overwrite ``old`` (or insert ``kind``/``key`` when None) unless it changed meanwhile."""
        new = Record(owner=self.owner, kind=old.kind if old else kind, key=old.key if old else key,
                     tag=tag if tag is not None else (old.tag if old else None), body=body)
        return await self._store.replace_record(new, expected=old)

    def of(self, owner: str) -> RecordReader:
        """Another owner's records, read-only."""
        return RecordReader(self._store, owner)


@dataclass(frozen=True)
class AgentContext:
    """What an agent's code may use outside the model: its settings, its records, an HTTP client."""

    thread_id: str
    settings: ToolSettings
    records: AgentRecords
    http: httpx.AsyncClient


@dataclass(frozen=True)
class ToolContext(AgentContext):
    """What a tool may use: who asked and approved, a stable idempotency key, and the agent context."""

    action_id: str
    idempotency_key: str
    requester: str | None
    approved_by: str | None
    effects: list[str] = field(default_factory=list)
    # The intent was already recorded before this step began: a crash may have cut off an earlier run of the
    # tool after its side effect, so a tool talking to an outside system must look for that effect first.
    resumed: bool = False

    def happened(self, summary: str) -> None:
        """Say the external side effect took place; if the tool fails after this, the result still says so."""
        self.effects.append(summary)


Tool = Callable[[Action, ToolContext], Awaitable[str]]
# Context fetched before the agent's first model call (factor 13): text for the model, or None for nothing.
Prefetch = Callable[[Thread, AgentContext], Awaitable[str | None]]


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
