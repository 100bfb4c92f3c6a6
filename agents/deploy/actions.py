"""The deploy agent's typed actions and their approval policies."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from bot.actions import Action, Approval

Environment = Literal["staging", "production"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_VERSION = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"


def _production(action: Deploy | Rollback) -> bool:
    return action.environment == "production"


class ListDeployments(Action):
    """List recent deployments, optionally for one service. Read-only."""

    name: ClassVar[str] = "list_deployments"
    owner: ClassVar[str | None] = "deploy"
    service: str | None = Field(None, pattern=_NAME, description="Only this service (optional).")


class Deploy(Action):
    """Deploy a version of a service to staging or production. Production needs an approver's OK."""

    name: ClassVar[str] = "deploy"
    owner: ClassVar[str | None] = "deploy"
    approval: ClassVar[Approval] = Approval.when(
        _production, group="deployers", four_eyes=_production, describe="when environment=production"
    )
    service: str = Field(pattern=_NAME, description="Service name, e.g. api.")
    version: str = Field(pattern=_VERSION, description="Version or git sha, e.g. 1.4.2.")
    environment: Environment = Field(description="staging or production.")

    def describe(self) -> str:
        """``deploy api 1.4.2 to production``."""
        return f"deploy {self.service} {self.version} to {self.environment}"


class Rollback(Action):
    """Roll a service back to its previous version in an environment. Always needs an approver's OK."""

    name: ClassVar[str] = "rollback"
    owner: ClassVar[str | None] = "deploy"  # the incident agent proposes it too; it works on the deploy ledger
    approval: ClassVar[Approval] = Approval.always(group="deployers", four_eyes=_production)
    service: str = Field(pattern=_NAME, description="Service name, e.g. api.")
    environment: Environment = Field(description="staging or production.")

    def describe(self) -> str:
        """``rollback api in production``."""
        return f"rollback {self.service} in {self.environment}"
