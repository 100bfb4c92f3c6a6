"""What an agent's code may use outside the model (factor 10's narrow tools): its own settings slice, its own
records, an HTTP client, and for a tool the ids of the execution it carries out. Never the store, never the
core settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx

from bot.config import AgentSettings, Settings, read_agent_settings
from bot.events import utcnow
from bot.store import Record, Records

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
