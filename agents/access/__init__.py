"""The access agent: temporary access approved by a role's owners, granted and revoked through a signed webhook."""

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import cast

from agents.access import expiry, roles
from agents.access.actions import GrantAccess, ListGrants, RevokeAccess
from agents.access.expiry import REVOKE, revoke_due, schedule_revokes
from agents.access.grants import grant, list_grants, revoke
from agents.access.settings import AccessSettings
from bot.actions import Action
from bot.agent import Agent, Tool
from bot.config import Settings
from bot.errors import ConfigError


def _enabled(settings: Settings) -> bool:
    """On once roles are configured."""
    return bool(settings.agent(AccessSettings).roles)


def _configure(settings: Settings) -> list[str]:
    """Read the roles (every role's owners must be a configured approver group) and check the webhook."""
    config = settings.agent(AccessSettings)
    table = roles.parse_roles(config.roles)
    for name, found in table.items():
        if not settings.approver_groups.get(found.group):
            raise ConfigError(f"OPSGATE_ACCESS_ROLES: role {name} is owned by group {found.group}, but "
                              f"OPSGATE_APPROVERS_{found.group.upper()} is not set")
    if config.webhook_url is None or not settings.webhook_secret:
        raise ConfigError("OPSGATE_ACCESS_ROLES needs OPSGATE_ACCESS_WEBHOOK_URL and OPSGATE_WEBHOOK_SECRET")
    roles.configure(table)
    expiry.configure(timedelta(seconds=config.retry_seconds))
    return []


AGENT = Agent(
    name="access",
    description="grants temporary access to roles (approved by their owners), lists and revokes grants",
    prompt_path=Path(__file__).parent / "prompt.md",
    settings=AccessSettings,
    tools=cast(Mapping[type[Action], Tool], {GrantAccess: grant, ListGrants: list_grants, RevokeAccess: revoke}),
    configure=_configure,
    enabled=_enabled,
    timers={REVOKE: revoke_due},
    schedulers=(schedule_revokes,),
)
