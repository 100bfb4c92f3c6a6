"""What a tool can read: its own agent's variables and the webhook signing secret, nothing else."""

from __future__ import annotations

import dataclasses

import pytest

from agents.access.settings import AccessSettings
from agents.deploy.settings import DeploySettings
from bot.agent import ToolContext, ToolSettings
from bot.config import load_settings

SECRETS = {"SLACK_BOT_TOKEN": "xoxb-secret", "SLACK_SIGNING_SECRET": "sig-secret", "IMAP_HOST": "imap.example.com",
           "IMAP_USERNAME": "u", "IMAP_PASSWORD": "imap-secret", "OPSGATE_EMAIL_ADDRESS": "ops@example.com",
           "OPSGATE_DEPLOY_GITHUB_TOKEN": "ghp_secret", "OPSGATE_DEPLOY_BACKEND": "ledger",
           "OPSGATE_ACCESS_WEBHOOK_URL": "http://grants.example.com/hook", "OPSGATE_WEBHOOK_SECRET": "whsecret"}


def test_a_tool_sees_only_its_agents_variables_and_the_signing_secret() -> None:
    """The deploy slice holds OPSGATE_DEPLOY_* only: no Slack, IMAP or other agent's secret is anywhere in it."""
    view = ToolSettings.of(load_settings(SECRETS), DeploySettings)
    assert set(view.environ) == {"OPSGATE_DEPLOY_GITHUB_TOKEN", "OPSGATE_DEPLOY_BACKEND"}
    assert view.webhook_secret == "whsecret"
    shown = repr(dataclasses.asdict(view))
    for secret in ("xoxb-secret", "sig-secret", "imap-secret", "grants.example.com"):
        assert secret not in shown
    assert view.agent(DeploySettings).backend == "ledger"


def test_another_agents_settings_are_refused() -> None:
    """Asking the deploy slice for the access agent's settings is an error, not silently empty settings."""
    view = ToolSettings.of(load_settings(SECRETS), DeploySettings)
    with pytest.raises(PermissionError, match="AccessSettings"):
        view.agent(AccessSettings)


def test_the_tool_context_has_no_store_and_no_core_settings() -> None:
    """A ToolContext offers records, its settings slice and an HTTP client; not the store, not Settings."""
    fields = {f.name for f in dataclasses.fields(ToolContext)}
    assert {"records", "settings", "http"} <= fields
    assert not fields & {"store", "ledger", "journal", "service"}
    assert ToolContext.__dataclass_fields__["settings"].type in ("ToolSettings", ToolSettings)
