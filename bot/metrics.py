"""Prometheus metrics: counters and histograms fed from committed events and a few edges, gauges read at scrape time.

The hot path only increments process-local values (a dict lookup and a lock per label set). Everything that is a
state of the system (threads by status, pending approvals, outbox backlog, runnable threads nobody has claimed)
is read from the database when /metrics is scraped, so every process reports the same truth and none of it costs
anything while threads run.

Several processes (``opsgate serve`` plus ``opsgate worker``): either scrape each one (a worker serves /metrics on
OPSGATE_METRICS_PORT), or give them one shared, empty PROMETHEUS_MULTIPROC_DIR on the same host and scrape any one
of them: prometheus-client then sums the counters and histograms of all of them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from bot.config import Settings
from bot.events import ActionResult, ApprovalDecided, ErrorEvent, Event, model_calls
from bot.store import OpsSnapshot, Store
from bot.thread import Thread

CONTENT_TYPE = CONTENT_TYPE_LATEST
disable_created_metrics()  # no *_created series: they double the output and nothing here graphs them
_LOCAL = CollectorRegistry()  # this process's values (single-process mode)

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_HUMAN = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600)  # people take minutes to hours

THREAD_EVENTS = Counter("opsgate_thread_events", "Events committed to threads.", ["agent", "type"],
                        registry=_LOCAL)
MODEL_CALLS = Counter("opsgate_model_calls", "Model calls that returned an answer.", ["agent", "model"],
                      registry=_LOCAL)
MODEL_SECONDS = Histogram("opsgate_model_call_seconds", "Model call latency.", ["agent"], buckets=_SECONDS,
                          registry=_LOCAL)
MODEL_TOKENS = Counter("opsgate_model_tokens", "Tokens used by model calls.", ["agent", "kind"], registry=_LOCAL)
MODEL_ERRORS = Counter("opsgate_model_errors", "Model calls that failed, by kind: unavailable (down, retried), "
                       "refused (a configuration problem), invalid_output.", ["kind"], registry=_LOCAL)
TOOL_RUNS = Counter("opsgate_tool_executions", "Tool executions by outcome (ok, failed).",
                    ["agent", "action", "outcome"], registry=_LOCAL)
TOOL_SECONDS = Histogram("opsgate_tool_execution_seconds", "Tool execution latency.", ["agent", "action"],
                         buckets=(*_SECONDS, 120, 300, 900, 1800), registry=_LOCAL)
DECISIONS = Histogram("opsgate_decision_latency_seconds", "From approval request to decision.",
                      ["agent", "action", "decision"], buckets=_HUMAN, registry=_LOCAL)
DELIVERIES = Counter("opsgate_outbox_deliveries", "Outbox deliveries by outcome (sent, retry, failed, error).",
                     ["channel", "outcome"], registry=_LOCAL)
DELIVERY_SECONDS = Histogram("opsgate_outbox_delivery_seconds", "Time a channel took to deliver one message.",
                             ["channel"], buckets=_SECONDS, registry=_LOCAL)
HTTP_SECONDS = Histogram("opsgate_http_request_seconds", "HTTP requests by route; route=/slack/events is the Slack "
                         "ack latency.", ["method", "route", "status"], buckets=_SECONDS, registry=_LOCAL)
INBOUND_MAIL = Counter("opsgate_inbound_mail", "Inbound mails by outcome (handled, ignored, refused).",
                       ["outcome"], registry=_LOCAL)


def _children(metric: MetricWrapperBase) -> Callable[..., Any]:
    """``metric.labels`` through a bounded cache: prometheus_client checks the values and takes a lock on every
    call (~1 µs), and each commit asks for several; children are never removed here, so a cached one stays live."""
    return functools.lru_cache(maxsize=1024)(metric.labels)


_THREAD_EVENTS, _MODEL_CALLS, _MODEL_SECONDS, _MODEL_TOKENS, _TOOL_RUNS, _TOOL_SECONDS = map(
    _children, (THREAD_EVENTS, MODEL_CALLS, MODEL_SECONDS, MODEL_TOKENS, TOOL_RUNS, TOOL_SECONDS))


def record_events(thread: Thread, events: Sequence[Event]) -> None:
    """Count what a commit tells: model calls, tool runs, decisions (with their latency), errors."""
    agent = thread.agent or "none"
    for event in events:
        _THREAD_EVENTS(agent, event.type).inc()
        for call in model_calls(event):
            _MODEL_CALLS(agent, call.model).inc()
            _MODEL_SECONDS(agent).observe(call.latency_ms / 1000)
            _MODEL_TOKENS(agent, "prompt").inc(call.prompt_tokens)
            _MODEL_TOKENS(agent, "completion").inc(call.completion_tokens)
        if isinstance(event, ActionResult):
            _TOOL_RUNS(agent, event.name, "ok" if event.ok else "failed").inc()
            _TOOL_SECONDS(agent, event.name).observe(event.latency_ms / 1000)
        elif isinstance(event, ApprovalDecided):
            request = thread.approval_request(event.approval_id)
            if request is not None:
                waited = (event.at - request.at).total_seconds()
                DECISIONS.labels(agent, request.name, "approved" if event.approved else "rejected").observe(waited)
        elif isinstance(event, ErrorEvent) and event.kind in ("invalid_output", "model"):
            MODEL_ERRORS.labels("refused" if event.kind == "model" else "invalid_output").inc()


@dataclass(eq=False)  # collectors are registered by identity
class DatabaseGauges(Collector):
    """The gauges read from the database for one scrape (``refresh`` first, then ``collect``)."""

    snapshot: OpsSnapshot | None = None
    error: str | None = None

    async def refresh(self, store: Store) -> None:
        try:
            self.snapshot, self.error = await store.ops_snapshot(), None
        except Exception as exc:  # a scrape must answer even when the database does not: up=0 says so
            self.snapshot, self.error = None, f"{type(exc).__name__}: {exc}"

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("opsgate_database_up", "1 when the scrape could read the database.")
        up.add_metric([], 0 if self.snapshot is None else 1)
        yield up
        s = self.snapshot
        if s is None:
            return
        threads = GaugeMetricFamily("opsgate_threads", "Threads by status and agent.", labels=["status", "agent"])
        for count in s.threads:
            threads.add_metric([count.status, count.agent or "none"], count.count)
        yield threads
        pending = GaugeMetricFamily("opsgate_pending_approvals", "Approvals waiting for a person.", labels=["agent"])
        oldest = GaugeMetricFamily("opsgate_pending_approval_oldest_age_seconds",
                                   "Age of the oldest approval still waiting.", labels=["agent"])
        for waiting in s.approvals:
            pending.add_metric([waiting.agent or "none"], waiting.count)
            oldest.add_metric([waiting.agent or "none"], waiting.oldest_age_seconds)
        yield pending
        yield oldest
        backlog = GaugeMetricFamily("opsgate_outbox_backlog", "Messages waiting to be delivered.", labels=["channel"])
        age = GaugeMetricFamily("opsgate_outbox_oldest_age_seconds", "Age of the oldest undelivered message.",
                                labels=["channel"])
        for queued in s.outbox:
            backlog.add_metric([queued.channel], queued.count)
            age.add_metric([queued.channel], queued.oldest_age_seconds)
        yield backlog
        yield age
        runnable = GaugeMetricFamily("opsgate_runnable_threads_unclaimed",
                                     "Threads ready to run that no worker holds.")
        runnable.add_metric([], s.runnable_unclaimed)
        yield runnable
        lag = GaugeMetricFamily("opsgate_worker_lease_lag_seconds",
                                "How long the oldest ready thread has waited for a worker (0: none waiting).")
        lag.add_metric([], s.lease_lag_seconds)
        yield lag


async def render(store: Store, settings: Settings) -> bytes:
    """The exposition text for one scrape: this process's (or every process's) values and the database gauges."""
    gauges = DatabaseGauges()
    await gauges.refresh(store)
    registry = CollectorRegistry()
    if settings.prometheus_multiproc_dir:
        MultiProcessCollector(registry)
    else:
        registry.register(_LOCAL)  # a registry is a collector of its own metrics
    registry.register(gauges)
    return generate_latest(registry)


def process_exited(settings: Settings) -> None:
    """Multi-process mode: drop this process's live values (prometheus-client keeps its counters)."""
    if settings.prometheus_multiproc_dir:
        mark_process_dead(os.getpid())
