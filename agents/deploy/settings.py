"""The deploy agent's own settings (``OPSGATE_DEPLOY_*``) and the choice of backend.

Backends: the local ledger, the signed webhook (signed with the core OPSGATE_WEBHOOK_SECRET that signs every
agent's outgoing webhooks), GitHub Actions and Argo CD.
``auto`` keeps round 1's behaviour: the webhook when its URL is set, the ledger otherwise.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, HttpUrl, SecretStr, field_validator, model_validator

from bot.agent import ToolSettings
from bot.config import AgentSettings, Settings
from bot.errors import ConfigError

Backend = Literal["ledger", "webhook", "github", "argocd"]
_PREFIX = "OPSGATE_DEPLOY_"


class DeploySettings(AgentSettings):
    """Every ``OPSGATE_DEPLOY_*`` variable; each field's alias is its name."""

    env_prefix: ClassVar[str] = _PREFIX

    webhook_url: HttpUrl | None = Field(None, alias="OPSGATE_DEPLOY_WEBHOOK_URL")
    backend: Literal["auto", "ledger", "webhook", "github", "argocd"] = Field("auto", alias="OPSGATE_DEPLOY_BACKEND")
    # how long to wait for the run or sync operation to appear, then for it to finish, and how often to look
    start_timeout: float = Field(120.0, alias="OPSGATE_DEPLOY_START_TIMEOUT", gt=0, le=3600)
    timeout: float = Field(1800.0, alias="OPSGATE_DEPLOY_TIMEOUT", gt=0, le=6 * 3600)
    poll_interval: float = Field(5.0, alias="OPSGATE_DEPLOY_POLL_INTERVAL", gt=0, le=300)

    # GitHub Actions: workflow_dispatch on this workflow of this repository
    github_token: SecretStr | None = Field(None, alias="OPSGATE_DEPLOY_GITHUB_TOKEN")
    github_repo: str | None = Field(None, alias="OPSGATE_DEPLOY_GITHUB_REPO",
                                    pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    github_workflow: str = Field("deploy.yml", alias="OPSGATE_DEPLOY_GITHUB_WORKFLOW", pattern=r"^[A-Za-z0-9_.-]+$")
    github_ref: str = Field("main", alias="OPSGATE_DEPLOY_GITHUB_REF", min_length=1)
    github_api_url: HttpUrl = Field(HttpUrl("https://api.github.com"), alias="OPSGATE_DEPLOY_GITHUB_API_URL")

    # Argo CD: set an image tag (Kustomize) or a Helm parameter on an application, sync, wait for health
    argocd_url: HttpUrl | None = Field(None, alias="OPSGATE_DEPLOY_ARGOCD_URL")
    argocd_token: SecretStr | None = Field(None, alias="OPSGATE_DEPLOY_ARGOCD_TOKEN")
    argocd_app: str = Field("{service}-{environment}", alias="OPSGATE_DEPLOY_ARGOCD_APP")
    argocd_app_namespace: str | None = Field(None, alias="OPSGATE_DEPLOY_ARGOCD_APP_NAMESPACE",
                                             pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    argocd_helm_parameter: str | None = Field(None, alias="OPSGATE_DEPLOY_ARGOCD_HELM_PARAMETER",
                                              pattern=r"^[A-Za-z0-9_.\[\]-]+$")
    argocd_image: str | None = Field(None, alias="OPSGATE_DEPLOY_ARGOCD_IMAGE", pattern=r"^[^\s=:]+(:\d+)?[^\s=:]*$")

    @field_validator("argocd_app", "argocd_image")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            value.format(service="s", environment="e")
        except (KeyError, IndexError, ValueError):
            raise ValueError("may only use the placeholders {service} and {environment}") from None
        return value

    @model_validator(mode="after")
    def _backend_complete(self) -> DeploySettings:
        if self.backend == "github":
            missing = [n for n, v in ((f"{_PREFIX}GITHUB_REPO", self.github_repo),
                                      (f"{_PREFIX}GITHUB_TOKEN", self.github_token)) if not v]
            if missing:
                raise ValueError(f"{_PREFIX}BACKEND=github needs {' and '.join(missing)}")
        if self.backend == "argocd":
            missing = [n for n, v in ((f"{_PREFIX}ARGOCD_URL", self.argocd_url),
                                      (f"{_PREFIX}ARGOCD_TOKEN", self.argocd_token)) if not v]
            if missing:
                raise ValueError(f"{_PREFIX}BACKEND=argocd needs {' and '.join(missing)}")
            if bool(self.argocd_helm_parameter) == bool(self.argocd_image):
                raise ValueError(f"{_PREFIX}BACKEND=argocd needs exactly one of {_PREFIX}ARGOCD_IMAGE (Kustomize) "
                                 f"and {_PREFIX}ARGOCD_HELM_PARAMETER (Helm)")
        return self

    def chosen(self) -> Backend:
        """The backend in use: ``auto`` is the webhook when its URL is set, else the local ledger."""
        if self.backend == "auto":
            return "webhook" if self.webhook_url else "ledger"
        return self.backend

    def app_name(self, service: str, environment: str) -> str:
        """The Argo CD application for a service in an environment."""
        return self.argocd_app.format(service=service, environment=environment)


def deploy_settings(settings: Settings | ToolSettings) -> DeploySettings:
    """The deploy settings, checked against the signing secret (ConfigError names the variable)."""
    own = settings.agent(DeploySettings)
    if own.backend == "webhook" and not own.webhook_url:
        raise ConfigError(f"{_PREFIX}BACKEND=webhook needs OPSGATE_DEPLOY_WEBHOOK_URL")
    if own.webhook_url and not settings.webhook_secret:
        raise ConfigError("OPSGATE_WEBHOOK_SECRET must be set when OPSGATE_DEPLOY_WEBHOOK_URL is set")
    return own


def start_notes(settings: Settings) -> list[str]:
    """Check the deploy settings at start; say so when deploys reach no outside system."""
    if deploy_settings(settings).chosen() == "ledger":
        return ["no deploy backend configured (OPSGATE_DEPLOY_BACKEND, OPSGATE_DEPLOY_WEBHOOK_URL): deploys are "
                "recorded in the local ledger only"]
    return []
