"""OpenTelemetry traces, opt-in through the standard OTEL_* variables: one trace per thread step.

A step (the worker advancing one thread) is the root span. Its model calls and tool calls become child spans built
from the committed events themselves (their latency is on the event), so the engine needs no tracing code; each
outbox delivery is a span of its own. Attributes come from the events: thread, agent, action, prompt hash, tokens.
Without an endpoint the tracer is a no-op and costs a function call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from bot.config import Settings
from bot.events import ActionProposed, ActionResult, ErrorEvent, Event, model_calls
from bot.store import OutboxRow
from bot.thread import Thread


@dataclass
class _State:
    tracer: trace.Tracer
    provider: TracerProvider | None = None


_state = _State(trace.NoOpTracer())


def configure(settings: Settings, processor: SpanProcessor | None = None) -> TracerProvider | None:
    """Start exporting when an OTLP endpoint is set (or a processor is given, e.g. in-memory in tests)."""
    if settings.otel_sdk_disabled:
        return None
    if processor is None:
        endpoint = settings.otel_traces_endpoint or (
            f"{settings.otel_endpoint.rstrip('/')}/v1/traces" if settings.otel_endpoint else None)
        if endpoint is None:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter: SpanExporter = OTLPSpanExporter(endpoint=endpoint, headers=_headers(settings.otel_headers))
        processor = BatchSpanProcessor(exporter)
    shutdown()
    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name}))
    provider.add_span_processor(processor)
    _state.tracer, _state.provider = provider.get_tracer("opsgate"), provider
    return provider


def shutdown() -> None:
    """Flush and stop the exporter (at process exit); tracing is a no-op again."""
    provider, _state.provider, _state.tracer = _state.provider, None, trace.NoOpTracer()
    if provider is not None:
        provider.shutdown()


def _headers(raw: str | None) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_HEADERS: ``key=value,key2=value2``."""
    pairs = (part.split("=", 1) for part in (raw or "").split(",") if "=" in part)
    return {key.strip(): value.strip() for key, value in pairs}


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the active span, as hex, for log lines; None outside a recorded span."""
    if _state.provider is None:  # tracing is off: no span of ours is recording (~1 µs of every log line)
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


@contextmanager
def step(thread_id: str) -> Iterator[Span]:
    """The root span of one worker step on a thread (a new trace)."""
    if _state.provider is None:  # tracing is off: not even a no-op span and its context (a few µs per step)
        yield trace.INVALID_SPAN
        return
    with _state.tracer.start_as_current_span(
        "opsgate.thread_step", context=trace.set_span_in_context(trace.INVALID_SPAN), kind=SpanKind.INTERNAL,
        attributes={"opsgate.thread_id": thread_id},
    ) as span:
        yield span


@contextmanager
def delivery(channel: str, row: OutboxRow) -> Iterator[Span]:
    """One outbox delivery through a channel."""
    attributes: dict[str, str | int] = {"opsgate.channel": channel, "opsgate.outbox_id": row.id,
                                        "opsgate.attempts": row.attempts}
    if row.thread_id:
        attributes["opsgate.thread_id"] = row.thread_id
    with _state.tracer.start_as_current_span(
        "opsgate.delivery", context=trace.set_span_in_context(trace.INVALID_SPAN), kind=SpanKind.PRODUCER,
        attributes=attributes,
    ) as span:
        yield span


def record_events(thread: Thread, events: Sequence[Event]) -> None:
    """Inside a step: a child span per model call and per tool call, timed from the committed events."""
    current = trace.get_current_span()
    if not current.is_recording():
        return  # not in a traced step (a person's decision through the inbox, or tracing is off)
    base = {"opsgate.thread_id": thread.id, "opsgate.agent": thread.agent or ""}
    current.set_attributes({**base, "opsgate.status": thread.status})
    for event in events:
        for call in model_calls(event):
            attributes: dict[str, str | int | bool] = {
                **base, "gen_ai.request.model": call.model, "opsgate.prompt_hash": call.prompt_hash,
                "gen_ai.usage.input_tokens": call.prompt_tokens, "gen_ai.usage.output_tokens": call.completion_tokens}
            if isinstance(event, ActionProposed):
                attributes["opsgate.action"] = event.name
                attributes["opsgate.second_look"] = call is event.second_look
            failed = event.kind if isinstance(event, ErrorEvent) else None
            _span_before(event, "opsgate.model_call", call.latency_ms, attributes, failed)
        if isinstance(event, ActionResult):
            attributes = {**base, "opsgate.action": event.name, "opsgate.action_id": event.action_id,
                          "opsgate.ok": event.ok}
            _span_before(event, "opsgate.tool_call", event.latency_ms, attributes, None if event.ok else event.result)


def _span_before(event: Event, name: str, latency_ms: int, attributes: dict[str, str | int | bool],
                 error: str | None) -> None:
    """A finished span that ended when ``event`` was made and lasted ``latency_ms``."""
    end = min(int(event.at.timestamp() * 1e9), time.time_ns())
    span = _state.tracer.start_span(name, start_time=end - latency_ms * 1_000_000, attributes=attributes)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error[:200]))
    span.end(end_time=end)
