"""Read-only diagnostics: Prometheus instant queries, runbooks from a folder, the alert behind a thread."""

from __future__ import annotations

import re
from typing import Any

import httpx

from agents.incident.settings import IncidentSettings
from bot.agent import RecordReader
from bot.alertmanager import NOTIFICATION, Notification
from bot.errors import ExecutionFailed
from bot.thread import Thread

_SERIES = 20
_RUNBOOK_CHARS = 8000


async def query_prometheus(http: httpx.AsyncClient, config: IncidentSettings, query: str) -> str:
    """An instant query's result as lines ``{labels} value``; ExecutionFailed with Prometheus' own error."""
    if config.prometheus_url is None:
        raise ExecutionFailed("no Prometheus configured (OPSGATE_INCIDENT_PROMETHEUS_URL)")
    url = str(config.prometheus_url).rstrip("/") + "/api/v1/query"
    try:
        response = await http.get(url, params={"query": query}, timeout=config.prometheus_timeout)
    except httpx.HTTPError as exc:
        raise ExecutionFailed(f"Prometheus unreachable: {type(exc).__name__}") from None
    try:
        answer: dict[str, Any] = response.json()
    except ValueError:
        raise ExecutionFailed(f"Prometheus answered HTTP {response.status_code} without JSON") from None
    if answer.get("status") != "success":
        raise ExecutionFailed(f"Prometheus refused the query: {answer.get('errorType')}: {answer.get('error')}")
    data = answer.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind in ("scalar", "string"):
        return f"{kind}: {result[1] if isinstance(result, list) and len(result) == 2 else result}"
    series = result if isinstance(result, list) else []
    if not series:
        return "no data (the query matched no series)"
    lines = []
    for item in series[:_SERIES]:
        labels = ", ".join(f'{k}="{v}"' for k, v in sorted((item.get("metric") or {}).items()))
        if kind == "matrix":
            values = [v[1] for v in item.get("values") or []]
            shown = f"{len(values)} samples, last {values[-1]}" if values else "no samples"
        else:
            shown = (item.get("value") or [None, "?"])[1]
        lines.append(f"{{{labels}}} {shown}")
    if len(series) > _SERIES:
        lines.append(f"… and {len(series) - _SERIES} more series")
    return "\n".join(lines)


def runbook(config: IncidentSettings, alertname: str) -> str | None:
    """The runbook for an alert: ``<alertname>.md`` in the folder (case and - / _ do not matter), or None."""
    folder = config.runbooks
    if folder is None or not folder.is_dir():
        return None
    wanted = _slug(alertname)
    for path in sorted(folder.glob("*.md")):
        if _slug(path.stem) == wanted and path.is_file() and folder.resolve() in path.resolve().parents:
            text = path.read_text(encoding="utf-8", errors="replace")
            return text if len(text) <= _RUNBOOK_CHARS else text[:_RUNBOOK_CHARS] + "\n… (runbook cut here)"
    return None


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


async def alert_of(thread: Thread, notifications: RecordReader) -> Notification | None:
    """The latest Alertmanager notification recorded for this thread, if it was started by one."""
    found = await notifications.list(NOTIFICATION, tag=thread.id, limit=1)
    return Notification.model_validate(found[0].body) if found else None


def service_of(alert: Notification) -> str | None:
    """The affected service: the alert's service, app or job label."""
    for key in ("service", "app", "job"):
        value = alert.commonLabels.get(key) or alert.groupLabels.get(key)
        if value:
            return value
    return None
