"""The deploy agent's own settings: the backend choice, complete backends, errors naming the variable, at start."""

from __future__ import annotations

import pytest

from agents.deploy.settings import DeploySettings, deploy_settings
from bot.app import startup_warnings
from bot.config import load_settings
from bot.errors import ConfigError
from bot.wiring import build_registry

GITHUB = {"OPSGATE_DEPLOY_BACKEND": "github", "OPSGATE_DEPLOY_GITHUB_REPO": "acme/deploys",
          "OPSGATE_DEPLOY_GITHUB_TOKEN": "ghp_secret_value"}
ARGO = {"OPSGATE_DEPLOY_BACKEND": "argocd", "OPSGATE_DEPLOY_ARGOCD_URL": "https://argocd.example.com",
        "OPSGATE_DEPLOY_ARGOCD_TOKEN": "argo_secret_value", "OPSGATE_DEPLOY_ARGOCD_IMAGE": "ghcr.io/acme/{service}"}


@pytest.mark.parametrize(("env", "backend"), [
    ({}, "ledger"),
    ({"OPSGATE_DEPLOY_WEBHOOK_URL": "https://relay.example.com/hook", "OPSGATE_WEBHOOK_SECRET": "s"}, "webhook"),
    (GITHUB, "github"),
    (ARGO, "argocd"),
])
def test_the_backend_is_chosen_by_configuration(env: dict[str, str], backend: str) -> None:
    """auto: the webhook when its URL is set, else the ledger; otherwise OPSGATE_DEPLOY_BACKEND."""
    settings = load_settings(env)
    assert deploy_settings(settings).chosen() == backend


@pytest.mark.parametrize(("env", "message"), [
    ({"OPSGATE_DEPLOY_BACKEND": "github"}, "needs OPSGATE_DEPLOY_GITHUB_REPO and OPSGATE_DEPLOY_GITHUB_TOKEN"),
    ({**GITHUB, "OPSGATE_DEPLOY_GITHUB_REPO": "not a repo"}, "OPSGATE_DEPLOY_GITHUB_REPO: String should match"),
    ({"OPSGATE_DEPLOY_BACKEND": "argocd", "OPSGATE_DEPLOY_ARGOCD_URL": "https://a.example.com"},
     "needs OPSGATE_DEPLOY_ARGOCD_TOKEN"),
    ({**ARGO, "OPSGATE_DEPLOY_ARGOCD_HELM_PARAMETER": "image.tag"}, "exactly one of OPSGATE_DEPLOY_ARGOCD_IMAGE"),
    ({**ARGO, "OPSGATE_DEPLOY_ARGOCD_APP": "{app}-{env}"}, "OPSGATE_DEPLOY_ARGOCD_APP: may only use the placeholders"),
    ({**ARGO, "OPSGATE_DEPLOY_ARGOCD_URL": "argocd.example.com"}, "OPSGATE_DEPLOY_ARGOCD_URL: Input should be a"),
    ({"OPSGATE_DEPLOY_BACKEND": "jenkins"}, "OPSGATE_DEPLOY_BACKEND: Input should be"),
    ({"OPSGATE_DEPLOY_BACKEND": "webhook"}, "OPSGATE_DEPLOY_BACKEND=webhook needs OPSGATE_DEPLOY_WEBHOOK_URL"),
    ({"OPSGATE_DEPLOY_TIMEOUT": "0"}, "OPSGATE_DEPLOY_TIMEOUT: Input should be greater than 0"),
    ({"OPSGATE_DEPLOY_GITHUB_REPOSITORY": "acme/x"}, "OPSGATE_DEPLOY_GITHUB_REPOSITORY: not a known variable"),
])
def test_a_bad_or_incomplete_setting_stops_the_start_naming_the_variable(env: dict[str, str], message: str) -> None:
    """Building the registry (as every command does at start) checks the agent's settings: ConfigError names them."""
    with pytest.raises(ConfigError, match=message):
        build_registry(load_settings(env))


def test_tokens_do_not_show_in_the_settings_repr() -> None:
    """Secrets are SecretStr: printing the settings does not leak them."""
    shown = repr(deploy_settings(load_settings({**GITHUB, **ARGO})))
    assert "ghp_secret_value" not in shown and "argo_secret_value" not in shown


def test_every_field_carries_the_agents_prefix() -> None:
    """All deploy variables start with OPSGATE_DEPLOY_, so the agent owns its whole namespace."""
    aliases = [f.alias for f in DeploySettings.model_fields.values()]
    assert aliases and all(a and a.startswith(DeploySettings.env_prefix) for a in aliases)


def test_the_process_environment_is_read_through_the_core_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPSGATE_DEPLOY_* from the real environment reach the agent (bot/config.py stays the only reader)."""
    for name, value in GITHUB.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert deploy_settings(settings).github_repo == "acme/deploys"


@pytest.mark.parametrize(("env", "warned"), [({}, True), (GITHUB, False)])
def test_start_warns_only_when_deploys_reach_no_outside_system(env: dict[str, str], warned: bool) -> None:
    """With no backend the start-up warnings say deploys only go to the local ledger; with one they do not."""
    settings = load_settings(env)
    notes = startup_warnings(settings, build_registry(settings))
    assert any("local ledger only" in note for note in notes) is warned


def test_a_webhook_without_the_signing_secret_is_refused() -> None:
    """OPSGATE_DEPLOY_WEBHOOK_URL without OPSGATE_WEBHOOK_SECRET stops the start, naming the secret."""
    with pytest.raises(ConfigError, match="OPSGATE_WEBHOOK_SECRET"):
        deploy_settings(load_settings({"OPSGATE_DEPLOY_WEBHOOK_URL": "http://relay/hook"}))
