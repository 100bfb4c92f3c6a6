"""The deploy agent: list deployments, deploy to staging/production, roll back."""

from pathlib import Path

from agents.deploy.actions import Deploy, ListDeployments, Rollback
from agents.deploy.executor import deploy, list_deployments, rollback
from agents.deploy.settings import DeploySettings, start_notes
from bot.agent import Agent

AGENT = Agent(
    name="deploy",
    description="deploys and rolls back services, lists what is deployed",
    prompt_path=Path(__file__).parent / "prompt.md",
    settings=DeploySettings,
    tools={ListDeployments: list_deployments, Deploy: deploy, Rollback: rollback},  # type: ignore[dict-item]
    configure=start_notes,
)
