"""Running an agent's eval suite: every case (``--repeat`` times) against one model, one report."""

from __future__ import annotations

from bot.agent import Agent, Registry
from bot.config import Settings
from bot.errors import ConfigError
from bot.evals.cases import Case, load_cases
from bot.evals.report import Report
from bot.evals.runner import run_case
from bot.llm import ChatModel


def cases_for(agent: Agent, pattern: str | None = None) -> list[Case]:
    """The agent's cases (``agents/<name>/evals/*.yaml``), filtered by an id or group glob."""
    directory = agent.prompt_path.parent / "evals"
    if not directory.is_dir():
        raise ConfigError(f"agent {agent.name} has no eval cases ({directory} does not exist)")
    cases = load_cases(directory, pattern)
    if not cases:
        raise ConfigError(f"no eval case of agent {agent.name} matches {pattern!r}")
    return cases


async def run_suite(
    agent: Agent, registry: Registry, model: ChatModel, settings: Settings, cases: list[Case], repeat: int = 1
) -> Report:
    """Run each case ``repeat`` times, one after another (a local model serves one request at a time)."""
    options = agent.model_options(settings)
    report = Report(agent=agent.name, prompt_hash=agent.prompt_hash, model=model.name,
                    temperature=options.temperature)
    for case in cases:
        for number in range(1, repeat + 1):
            run = await run_case(case, agent, registry, model, settings)
            report.runs.append(run.model_copy(update={"run": number}))
    return report.finish()
