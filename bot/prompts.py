"""Prompt versions (factor 2): which prompt texts each agent ran with, when, how often, and how they scored.

Every model call records its agent's prompt hash. At start-up each agent's current prompt text is kept in the
``state`` table under its hash, so ``opsgate prompts show|diff`` can print any version that ever ran; an eval
run keeps its summary under the hash it ran, so ``opsgate prompts list`` can show the last result per version.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from bot.agent import Agent
from bot.events import ActionProposed, AgentSelected, ErrorEvent, model_calls, utcnow
from bot.store import Store


class EvalSummary(BaseModel):
    """The last eval result of one prompt version."""

    at: datetime
    model: str
    passed: int
    runs: int

    @property
    def rate(self) -> float:
        """Share of runs that passed."""
        return self.passed / self.runs if self.runs else 0.0


class PromptVersion(BaseModel):
    """One prompt version of one agent as seen in the event log."""

    agent: str
    prompt_hash: str
    first_used: datetime | None = None
    last_used: datetime | None = None
    calls: int = 0
    current: bool = False
    last_eval: EvalSummary | None = None


def _text_key(agent: str, prompt_hash: str) -> str:
    return f"prompt:{agent}:{prompt_hash}"


def _eval_key(agent: str, prompt_hash: str) -> str:
    return f"eval:{agent}:{prompt_hash}"


async def record_prompts(store: Store, agents: Iterable[Agent]) -> None:
    """Keep each agent's current prompt text under its hash (once per version)."""
    for agent in agents:
        key = _text_key(agent.name, agent.prompt_hash)
        if await store.get_state(key) is None:
            await store.set_state(key, {"text": agent.prompt, "recorded_at": utcnow().isoformat()})


async def prompt_text(store: Store, agent: str, prompt_hash: str) -> str | None:
    """The text of a prompt version, if it was recorded."""
    value: Any = await store.get_state(_text_key(agent, prompt_hash))
    return value.get("text") if isinstance(value, dict) else None


async def record_eval(store: Store, agent: str, prompt_hash: str, summary: EvalSummary) -> None:
    """Keep an eval run's summary as the last result of that prompt version."""
    await store.set_state(_eval_key(agent, prompt_hash), summary.model_dump(mode="json"))


async def versions(store: Store, agents: Iterable[Agent]) -> list[PromptVersion]:
    """Every (agent, prompt hash) in the event log with first and last use and calls; current ones included."""
    found: dict[tuple[str, str], PromptVersion] = {}
    async for record in store.audit(None, ("action_proposed", "error", "agent_selected")):
        event = record.event
        if not isinstance(event, ActionProposed | ErrorEvent | AgentSelected):
            continue
        for call in model_calls(event):
            agent = "router" if call.prompt_hash == "router" else (record.agent or "?")
            version = found.setdefault((agent, call.prompt_hash),
                                       PromptVersion(agent=agent, prompt_hash=call.prompt_hash))
            version.calls += 1
            version.first_used = min(version.first_used or event.at, event.at)
            version.last_used = max(version.last_used or event.at, event.at)
    for current in agents:
        version = found.setdefault((current.name, current.prompt_hash),
                                   PromptVersion(agent=current.name, prompt_hash=current.prompt_hash))
        version.current = True
    for version in found.values():
        value = await store.get_state(_eval_key(version.agent, version.prompt_hash))
        version.last_eval = EvalSummary.model_validate(value) if isinstance(value, dict) else None
    return sorted(found.values(), key=lambda v: (v.agent, v.last_used or utcnow()))


def diff(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff of two prompt texts."""
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=old_name, tofile=new_name))
