"""The incident agent's actions: read-only diagnostics, updates for people, and resolving.

A rollback is the deploy agent's own ``rollback`` action (same policy, same approvers), proposed in the incident's
thread, so the approval and its audit trail stay with the incident.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from bot.actions import Action

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class QueryPrometheus(Action):
    """Run a PromQL instant query against Prometheus (read-only), e.g. rate(http_requests_total{code="500"}[5m])."""

    name: ClassVar[str] = "query_prometheus"
    query: str = Field(min_length=1, max_length=2000, description="PromQL expression.")


class RecentDeploys(Action):
    """Recent deploys and rollbacks, optionally of one service (read-only)."""

    name: ClassVar[str] = "recent_deploys"
    service: str | None = Field(None, pattern=_NAME, description="Only this service (optional).")


class ReadRunbook(Action):
    """Read the runbook of an alert by its alert name (read-only)."""

    name: ClassVar[str] = "read_runbook"
    alertname: str = Field(pattern=_NAME, description="The alert's name, e.g. HighErrorRate.")


class PostUpdate(Action):
    """Post a status update on the incident for the people following it, then carry on investigating."""

    name: ClassVar[str] = "post_update"
    message: str = Field(min_length=1, max_length=3000)

    def describe(self) -> str:
        return "post an update"


class Resolve(Action):
    """Mark the incident resolved with a one-paragraph summary of cause and fix."""

    name: ClassVar[str] = "resolve_incident"
    resolution: str = Field(min_length=1, max_length=3000, description="Cause and fix in one paragraph.")

    def describe(self) -> str:
        return "resolve the incident"
