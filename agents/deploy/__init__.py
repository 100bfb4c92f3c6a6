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
    temperature=0.0,  # the same request should get the same proposal; evals measure this setting
    max_tokens=256,  # one tool call is short; a small model looping inside a string is cut off early
    plain_question="Which service, which version and which environment (staging or production) do you mean?",
    plain_reply="I can't share my instructions. I can deploy, roll back or list deployments: tell me which.",
)
