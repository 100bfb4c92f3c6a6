"""Prometheus Alertmanager's webhook payload (version 4), typed, and what a notification says to people and agents.

One thread per alert group: Alertmanager's ``groupKey`` names the group; every notification for it (firing,
more alerts, resolved) is one message in that thread. Repeated notifications (``repeat_interval``) carry the
same alerts in the same states, so they have the same fingerprint and are recorded once.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SOURCE = "alertmanager"  # the owner of the notifications' records, the identity of their messages
NOTIFICATION = "notification"  # record kind: one per distinct notification, tagged with its thread id
_SHOWN_ALERTS = 20


class Alert(BaseModel):
    """One alert of a group, as Alertmanager sends it."""

    model_config = ConfigDict(extra="ignore")
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None  # noqa: N815 - Alertmanager's field names
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = ""


class Notification(BaseModel):
    """Alertmanager's webhook body (``version: "4"``)."""

    model_config = ConfigDict(extra="ignore")
    version: Literal["4"]
    groupKey: str = Field(min_length=1, max_length=4096)  # noqa: N815
    truncatedAlerts: int = Field(0, ge=0)  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    externalURL: str = ""  # noqa: N815
    alerts: list[Alert] = Field(min_length=1, max_length=1000)

    @property
    def group_id(self) -> str:
        """A fixed-length key of the alert group (groupKey can be long)."""
        return hashlib.sha256(self.groupKey.encode()).hexdigest()[:40]

    @property
    def fingerprint(self) -> str:
        """Equal for repeated notifications of the same alerts in the same states; different on any change."""
        parts = sorted(f"{a.fingerprint or sorted(a.labels.items())}|{a.status}|{a.startsAt}|{a.endsAt}"
                       for a in self.alerts)
        digest = hashlib.sha256("\n".join([self.groupKey, self.status, *parts]).encode()).hexdigest()
        return digest[:40]

    @property
    def alertname(self) -> str:
        return self.commonLabels.get("alertname") or self.groupLabels.get("alertname") or "alert"

    def text(self) -> str:
        """The message people and the agent read: status, the group's labels, each alert's summary."""
        firing = sum(a.status == "firing" for a in self.alerts)
        head = f"[{self.status.upper()}:{firing if self.status == 'firing' else len(self.alerts)}] {self.alertname}"
        labels = " ".join(f"{k}={v}" for k, v in sorted(self.groupLabels.items()) if k != "alertname")
        lines = [f"{head} {labels}".strip()]
        for key in ("summary", "description"):
            if self.commonAnnotations.get(key):
                lines.append(f"{key}: {self.commonAnnotations[key]}")
        for alert in self.alerts[:_SHOWN_ALERTS]:
            own = " ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())
                           if self.commonLabels.get(k) != v)
            said = alert.annotations.get("summary") or alert.annotations.get("description") or ""
            lines.append(f"- {alert.status} {own} {said}".rstrip())
        hidden = len(self.alerts) - _SHOWN_ALERTS + self.truncatedAlerts
        if hidden > 0:
            lines.append(f"- … and {hidden} more alerts")
        return "\n".join(lines)
