"""The deploy agent's typed actions, their approval policies and where their values must come from."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from bot.actions import Action, Approval, Grounded

Environment = Literal["staging", "production"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_VERSION = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"

# A service or version must have been named by a person or shown by a tool (list_deployments); the environment
# decides whether an approver is asked at all, so only a person's words count, and a default is never assumed.
SERVICE = Grounded(sources=frozenset({"said", "tool_result", "context"}), ask="Which service?")
VERSION = Grounded(
    sources=frozenset({"said", "tool_result"}),
    not_answers=frozenset({"latest", "newest", "current", "last", "head", "main", "master", "stable", "recent",
                           "new", "next", "previous"}),
    ask="Which version of {service} should go to {environment}?",
)
ENVIRONMENT = Grounded(
    sources=frozenset({"said"}),
    aliases={"production": ("prod", "prd", "live"), "staging": ("stage", "stg")},
    ask="Which environment should {service} go to?",
)
# A rollback always asks an approver, who sees the environment; an incident's pre-fetched context (the alert's
# labels from the authenticated Alertmanager hook) may name it too.
ROLLBACK_ENVIRONMENT = Grounded(
    sources=frozenset({"said", "context"}), aliases=ENVIRONMENT.aliases,
    ask="Which environment should {service} be rolled back in?",
)


def _production(action: Deploy | Rollback) -> bool:
    return action.environment == "production"


class ListDeployments(Action):
    """List recent deployments (service, version, environment, who approved), optionally for one service.
    Read-only: use it to answer "what is running?" or to find a version a person referred to."""

    name: ClassVar[str] = "list_deployments"
    side_effects: ClassVar[bool] = False
    owner: ClassVar[str | None] = "deploy"
    service: str | None = Field(None, pattern=_NAME, description="Only this service (optional).")


class Deploy(Action):
    """Deploy a version of a service to staging or production. Only call it when the person named the service,
    the exact version and the environment (or a tool result showed the version); otherwise ask.
    Production needs an approver's OK, which the system requests."""

    name: ClassVar[str] = "deploy"
    owner: ClassVar[str | None] = "deploy"
    approval: ClassVar[Approval] = Approval.when(
        _production, group="deployers", four_eyes=_production, describe="when environment=production"
    )
    service: Annotated[str, SERVICE] = Field(pattern=_NAME, description="Service name exactly as the person wrote it.")
    version: Annotated[str, VERSION] = Field(
        pattern=_VERSION, description="Exact version or git sha the person gave, e.g. 1.4.2. Never 'latest'.")
    environment: Annotated[Environment, ENVIRONMENT] = Field(
        description="staging or production, as the person said it (prod = production).")

    def describe(self) -> str:
        """``deploy api 1.4.2 to production``."""
        return f"deploy {self.service} {self.version} to {self.environment}"


class Rollback(Action):
    """Roll a service back to the version it ran before in an environment. opsgate finds that version itself:
    only the service and the environment are needed, never a version. Always needs an approver's OK."""

    name: ClassVar[str] = "rollback"
    owner: ClassVar[str | None] = "deploy"  # the incident agent proposes it too; it works on the deploy ledger
    approval: ClassVar[Approval] = Approval.always(group="deployers", four_eyes=_production)
    service: Annotated[str, SERVICE] = Field(pattern=_NAME, description="Service name exactly as the person wrote it.")
    environment: Annotated[Environment, ROLLBACK_ENVIRONMENT] = Field(
        description="staging or production, as the person said it (prod = production).")

    def describe(self) -> str:
        """``rollback api in production``."""
        return f"rollback {self.service} in {self.environment}"
