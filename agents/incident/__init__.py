"""The incident agent: alerts in, context pre-fetched, read-only diagnostics, rollbacks through the deploy agent."""

from collections.abc import Mapping
from pathlib import Path
from typing import cast

from agents.deploy.actions import Rollback
from agents.deploy.executor import rollback
from agents.incident.actions import PostUpdate, QueryPrometheus, ReadRunbook, RecentDeploys, Resolve
from agents.incident.settings import IncidentSettings
from agents.incident.tools import deploys, post_update, prefetch, query, read_runbook, resolve
from bot.actions import Action
from bot.agent import Agent, Tool
from bot.config import Settings


def _start_notes(settings: Settings) -> list[str]:
    """Check the incident settings at start; say what the agent cannot do without them."""
    config = settings.agent(IncidentSettings)
    notes = []
    if config.prometheus_url is None:
        notes.append("incident agent: no OPSGATE_INCIDENT_PROMETHEUS_URL, so it cannot query Prometheus")
    if config.runbooks is None or not config.runbooks.is_dir():
        notes.append("incident agent: OPSGATE_INCIDENT_RUNBOOKS is not a folder, so it finds no runbooks")
    return notes


def _enabled(settings: Settings) -> bool:
    """On once it can look at something: a Prometheus or a runbook folder is configured."""
    config = settings.agent(IncidentSettings)
    return config.prometheus_url is not None or config.runbooks is not None


AGENT = Agent(
    name="incident",
    description="investigates alerts and incidents: metrics, recent deploys, runbooks; proposes rollbacks",
    prompt_path=Path(__file__).parent / "prompt.md",
    settings=IncidentSettings,
    tools=cast(Mapping[type[Action], Tool], {
        QueryPrometheus: query, RecentDeploys: deploys, ReadRunbook: read_runbook, PostUpdate: post_update,
        Resolve: resolve, Rollback: rollback,
    }),
    configure=_start_notes,
    enabled=_enabled,
    prefetch=prefetch,
    alerts=True,
)
