"""The access agent's own settings (``OPSGATE_ACCESS_*``): the roles and the webhook that grants and revokes."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, HttpUrl

from bot.config import AgentSettings


class AccessSettings(AgentSettings):
    """Every ``OPSGATE_ACCESS_*`` variable; each field's alias is its name."""

    env_prefix: ClassVar[str] = "OPSGATE_ACCESS_"

    roles: str | None = Field(None, alias="OPSGATE_ACCESS_ROLES")  # JSON, see agents/access/roles.py
    webhook_url: HttpUrl | None = Field(None, alias="OPSGATE_ACCESS_WEBHOOK_URL")
    retry_seconds: float = Field(60.0, alias="OPSGATE_ACCESS_RETRY_SECONDS", gt=0, le=3600)  # failed revokes
