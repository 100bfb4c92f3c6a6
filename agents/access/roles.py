"""Access roles: who owns each (an approver group) and the longest grant it allows, read from OPSGATE_ACCESS_ROLES.

The role table is configured once at start (``configure``) because the access agent's actions validate against
it before anything is proposed for approval: a grant longer than its role allows never reaches an approver.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from bot.config import read_json_setting
from bot.errors import ConfigError

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1h30m``: ValueError for anything else or zero."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration like 30m, 2h or 1h30m")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if value <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return value


class Role(BaseModel):
    """One role: its owners' approver group (OPSGATE_APPROVERS_<GROUP>) and its longest grant."""

    model_config = ConfigDict(extra="forbid")
    group: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    max: str = "1h"

    @field_validator("max")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def longest(self) -> timedelta:
        return parse_duration(self.max)


_ROLES: TypeAdapter[dict[str, Role]] = TypeAdapter(dict[str, Role])
_configured: dict[str, Role] = {}


def parse_roles(raw: str | None) -> dict[str, Role]:
    """OPSGATE_ACCESS_ROLES (JSON ``{"role": {"group": "...", "max": "2h"}}``); ConfigError says what is wrong."""
    if not raw:
        return {}
    roles = read_json_setting("OPSGATE_ACCESS_ROLES", raw, _ROLES)
    bad = [name for name in roles if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name)]
    if bad:
        raise ConfigError(f"OPSGATE_ACCESS_ROLES: {bad[0]!r} is not a role name (letters, digits, . _ -)")
    return roles


def configure(roles: dict[str, Role]) -> None:
    """Make ``roles`` the roles grants are checked against."""
    _configured.clear()
    _configured.update(roles)


def role(name: str) -> Role:
    """The configured role; ValueError naming the known ones."""
    found = _configured.get(name)
    if found is None:
        raise ValueError(f"unknown role {name!r}; roles: {', '.join(sorted(_configured)) or 'none configured'}")
    return found
