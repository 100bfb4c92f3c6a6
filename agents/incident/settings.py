"""The incident agent's own settings (``OPSGATE_INCIDENT_*``): where Prometheus and the runbooks are."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, HttpUrl

from bot.config import AgentSettings


class IncidentSettings(AgentSettings):
    """Every ``OPSGATE_INCIDENT_*`` variable; each field's alias is its name."""

    env_prefix: ClassVar[str] = "OPSGATE_INCIDENT_"

    prometheus_url: HttpUrl | None = Field(None, alias="OPSGATE_INCIDENT_PROMETHEUS_URL")
    prometheus_timeout: float = Field(10.0, alias="OPSGATE_INCIDENT_PROMETHEUS_TIMEOUT", gt=0, le=120)
    runbooks: Path | None = Field(None, alias="OPSGATE_INCIDENT_RUNBOOKS")  # a folder of <alertname>.md files
