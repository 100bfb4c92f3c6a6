"""What ``opsgate eval`` and ``opsgate prompts`` do, apart from printing: the wiring of model, registry and store."""

from __future__ import annotations

from bot.agent import Agent, Registry
from bot.config import Settings
from bot.errors import ConfigError, UnknownAgent
from bot.evals.report import Report
from bot.evals.suite import cases_for, run_suite
from bot.llm import OpenAIChatModel
from bot.prompts import EvalSummary, PromptVersion, diff, prompt_text, record_eval, record_prompts, versions
from bot.wiring import build_registry, prepare_database
from storage import store_for


def _agent(registry: Registry, name: str | None) -> Agent:
    try:
        return registry.get(name or registry.default)
    except UnknownAgent as exc:
        raise ConfigError(str(exc)) from None


def _agents(registry: Registry, name: str | None) -> list[Agent]:
    if name is not None:
        return [_agent(registry, name)]
    return [a for a in registry if (a.prompt_path.parent / "evals").is_dir()]


async def run_eval(settings: Settings, agent_name: str | None, pattern: str | None, repeat: int) -> list[Report]:
    """Run the chosen agents' cases; keep each report's summary as the last eval of its prompt version."""
    registry = build_registry(settings)
    chosen = _agents(registry, agent_name)
    suites = [(agent, cases_for(agent, pattern)) for agent in chosen]  # malformed cases fail before any call
    # One retry: a 5xx here is usually this case's answer failing on the server (a cut-off call), not an outage.
    model = OpenAIChatModel(settings.model_copy(update={"model_retries": min(settings.model_retries, 1)}))
    reports = []
    try:
        for agent, cases in suites:
            reports.append(await run_suite(agent, registry, model, settings, cases, repeat))
    finally:
        await model.aclose()
    await prepare_database(settings)
    store = store_for(settings.database_url)
    try:
        await record_prompts(store, chosen)
        for report in reports:
            await record_eval(store, report.agent, report.prompt_hash, EvalSummary(
                at=report.finished_at or report.started_at, model=report.model,
                passed=report.totals.passed, runs=report.totals.runs))
    finally:
        await store.close()
    return reports


async def list_versions(settings: Settings, agent_name: str | None) -> list[PromptVersion]:
    """The prompt versions in the event log (and the current ones)."""
    registry = build_registry(settings)
    await prepare_database(settings)
    store = store_for(settings.database_url)
    try:
        found = await versions(store, registry)
    finally:
        await store.close()
    return [v for v in found if agent_name is None or v.agent == agent_name]


async def _text(settings: Settings, agent: Agent, prompt_hash: str | None) -> tuple[str, str]:
    """(hash, text) of a version given by a hash prefix; the current prompt when None."""
    if prompt_hash is None or agent.prompt_hash.startswith(prompt_hash):
        return agent.prompt_hash, agent.prompt
    store = store_for(settings.database_url)
    try:
        known = [v.prompt_hash for v in await versions(store, [agent]) if v.agent == agent.name]
        matches = [h for h in known if h.startswith(prompt_hash)]
        if len(matches) != 1:
            raise ConfigError(f"prompt {prompt_hash!r} of agent {agent.name}: "
                              f"{'ambiguous' if matches else 'not in the event log'} (known: {', '.join(known)})")
        text = await prompt_text(store, agent.name, matches[0])
    finally:
        await store.close()
    if text is None:
        raise ConfigError(f"prompt {matches[0]} of agent {agent.name} ran before opsgate kept prompt texts")
    return matches[0], text


async def find_text(settings: Settings, agent_name: str | None, prompt_hash: str | None) -> str:
    """A prompt version's text."""
    registry = build_registry(settings)
    await prepare_database(settings)
    _, text = await _text(settings, _agent(registry, agent_name), prompt_hash)
    return text


async def diff_texts(settings: Settings, agent_name: str | None, old: str, new: str | None) -> str:
    """A unified diff between two versions of an agent's prompt."""
    registry = build_registry(settings)
    await prepare_database(settings)
    agent = _agent(registry, agent_name)
    old_hash, old_text = await _text(settings, agent, old)
    new_hash, new_text = await _text(settings, agent, new)
    return diff(old_text, new_text, f"{agent.name}@{old_hash}", f"{agent.name}@{new_hash}") or "(no difference)\n"
