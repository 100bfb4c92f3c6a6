"""docs/grafana-dashboard.json and docs/alerts.yml only use metrics opsgate exposes, and are well formed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from bot import metrics
from bot.store import Backlog, OpsSnapshot, ThreadCount

DOCS = Path(__file__).resolve().parents[2] / "docs"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exposed() -> set[str]:
    """Every series name /metrics can show: this process's families and the database gauges."""
    snapshot = OpsSnapshot(threads=[ThreadCount(status="done", agent="deploy", count=1)],
                           approvals=[Backlog(agent="deploy", count=1, oldest_age_seconds=1)],
                           outbox=[Backlog(channel="slack", count=1, oldest_age_seconds=1)])
    families = [*metrics._LOCAL.collect(), *metrics.DatabaseGauges(snapshot).collect()]
    return {f.name + suffix for f in families for suffix in _SUFFIXES[f.type]}


def used(expr: str) -> set[str]:
    return set(re.findall(r"\bopsgate_[a-z_]+\b", expr))


def test_the_alert_rules_are_complete_and_use_real_metrics() -> None:
    """Each rule has an expression on exposed series, a severity and a summary."""
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())["groups"][0]["rules"]
    names = exposed()
    assert len(rules) >= 6
    for rule in rules:
        assert rule["alert"].startswith("Opsgate") and rule["labels"]["severity"] in ("page", "ticket")
        assert rule["annotations"]["summary"]
        assert used(rule["expr"]) <= names, rule["alert"]
    assert {"OpsgateWorkersBehind", "OpsgateOutboxStuck", "OpsgateApprovalWaitingLong"} <= {r["alert"] for r in rules}


def test_the_dashboard_graphs_every_area_the_issue_names() -> None:
    """Panels with unique ids, Prometheus targets on exposed series, covering each metric family."""
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    names = exposed()
    assert all(used(e) and used(e) <= names for e in exprs)
    graphed = set().union(*(used(e) for e in exprs))
    for family in ("opsgate_threads", "opsgate_pending_approvals", "opsgate_decision_latency_seconds_bucket",
                   "opsgate_model_call_seconds_bucket", "opsgate_model_tokens_total", "opsgate_model_errors_total",
                   "opsgate_tool_executions_total", "opsgate_outbox_backlog", "opsgate_outbox_oldest_age_seconds",
                   "opsgate_worker_lease_lag_seconds", "opsgate_http_request_seconds_bucket",
                   "opsgate_inbound_mail_total"):
        assert family in graphed, family
