"""Traces: the SDK's in-memory exporter on a real runtime with the scripted model server, and once a real
`opsgate serve` exporting OTLP/HTTP to a receiver on loopback, with the trace id in its JSON log lines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from bot import metrics, tracing
from bot.channel import Channel
from bot.config import load_settings
from bot.errors import DeliveryRetry
from bot.events import Via
from bot.outbox import OutboxDispatcher
from bot.runtime import Runtime
from bot.store import OutboxItem, OutboxRow
from bot.wiring import build_runtime, prepare_database
from tests.support.api_client import TOKEN, ApiClient
from tests.support.model_replies import http_error, tool_call
from tests.support.model_server import ScriptedModelServer
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.processes import OpsgateProcess
from tests.support.threads import running, settled

STAGING = {"service": "api", "version": "1.4.2", "environment": "staging"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory, for this test only."""
    exporter = InMemorySpanExporter()
    tracing.configure(load_settings({}), SimpleSpanProcessor(exporter))
    yield exporter
    tracing.shutdown()


def runtime_with_model(url: str, model: ScriptedModelServer, **env: str) -> AbstractAsyncContextManager[Runtime]:
    return running(url, OPENAI_BASE_URL=model.base_url, OPSGATE_MODEL_RETRIES="0", **env)


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def test_a_thread_step_is_one_trace_with_its_model_and_tool_calls(
    sqlite_database_url: str, model_server: ScriptedModelServer, spans: InMemorySpanExporter
) -> None:
    """Model call, tool call, model call: children of the step span, with thread, agent, action, hash, tokens."""
    model_server.script(tool_call("deploy", **STAGING), tool_call("done_for_now", message="deployed"))
    async with runtime_with_model(sqlite_database_url, model_server) as runtime:
        started = await runtime.service.start_thread("deploy api 1.4.2 to staging", user="bob", via=Via(channel="api"))
        thread = await settled(runtime, started.id, "done")
    steps = [s for s in named(spans, "opsgate.thread_step") if s.attributes["opsgate.thread_id"] == thread.id]
    calls, tools = named(spans, "opsgate.model_call"), named(spans, "opsgate.tool_call")
    assert len(steps) >= 1 and len(calls) == 2 and len(tools) == 1
    step_ids = {s.context.span_id for s in steps}
    assert all(s.parent is not None and s.parent.span_id in step_ids for s in [*calls, *tools])
    assert len({s.context.trace_id for s in steps}) == len(steps)  # each step is a trace of its own
    first = calls[0].attributes
    assert first["opsgate.thread_id"] == thread.id and first["opsgate.agent"] == "deploy"
    assert first["opsgate.action"] == "deploy" and first["gen_ai.usage.input_tokens"] > 0
    assert len(str(first["opsgate.prompt_hash"])) == 16 and first["gen_ai.request.model"]
    tool = tools[0]
    assert tool.attributes["opsgate.action"] == "deploy" and tool.attributes["opsgate.ok"] is True
    assert tool.start_time is not None and tool.end_time is not None and tool.end_time >= tool.start_time
    assert steps[0].attributes["opsgate.agent"] == "deploy"


async def test_a_model_outage_marks_the_step_and_counts_as_unavailable(
    sqlite_database_url: str, model_server: ScriptedModelServer, spans: InMemorySpanExporter
) -> None:
    """A 503 from the model: the step span ends in error and opsgate_model_errors_total{kind=unavailable} grows."""
    before = metrics.MODEL_ERRORS.labels("unavailable")._value.get()
    model_server.script(http_error(503))
    async with runtime_with_model(sqlite_database_url, model_server) as runtime:
        started = await runtime.service.start_thread("deploy api", user="bob", via=Via(channel="api"))
        deadline = time.monotonic() + 10
        while not [s for s in named(spans, "opsgate.thread_step") if s.status.status_code is StatusCode.ERROR]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert (await runtime.service.get_thread(started.id)).status == "running"  # retried later, not lost
    assert metrics.MODEL_ERRORS.labels("unavailable")._value.get() == before + 1


class Flaky(Channel):
    """A channel that delivers every other message and asks for a retry on the rest."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0

    async def deliver(self, row: OutboxRow) -> None:
        self.calls += 1
        if self.calls % 2 == 0:
            raise DeliveryRetry("busy, try later", retry_after=60)


async def test_each_delivery_is_a_span_and_counted_by_outcome(
    sqlite_database_url: str, spans: InMemorySpanExporter
) -> None:
    """Sent and retried deliveries: one span each (with channel and outbox id) and the counters by outcome."""
    settings = load_settings({"DATABASE_URL": sqlite_database_url})
    await prepare_database(settings)
    channel = Flaky()
    runtime = build_runtime(settings, channels=[channel], model=False)
    sent = metrics.DELIVERIES.labels("flaky", "sent")._value.get()
    retried = metrics.DELIVERIES.labels("flaky", "retry")._value.get()
    try:
        await runtime.store.add_outbox([OutboxItem(channel="flaky", payload={"n": n}) for n in range(2)])
        dispatcher = OutboxDispatcher(runtime.store, runtime.journal, [channel], 0.05)
        for row in await runtime.store.claim_outbox("flaky", 10, lease_seconds=60):
            await dispatcher.deliver(channel, row)
    finally:
        await runtime.aclose()
    deliveries = named(spans, "opsgate.delivery")
    assert [s.attributes["opsgate.channel"] for s in deliveries] == ["flaky", "flaky"]
    assert [s.status.status_code for s in deliveries] == [StatusCode.UNSET, StatusCode.ERROR]
    assert metrics.DELIVERIES.labels("flaky", "sent")._value.get() == sent + 1
    assert metrics.DELIVERIES.labels("flaky", "retry")._value.get() == retried + 1


async def test_serve_exports_otlp_http_and_logs_the_trace_id(tmp_workdir: Path) -> None:
    """A real `opsgate serve` with OTEL_EXPORTER_OTLP_ENDPOINT: the spans reach a receiver on loopback, named for
    opsgate, and the JSON log line of the tool's result carries the same trace id."""
    with OtlpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100",
               "OPSGATE_API_TOKEN": TOKEN, "OTEL_SERVICE_NAME": "opsgate-test"}
        async with OpsgateProcess(env, cwd=str(tmp_workdir)) as process:
            api = ApiClient(process.url)
            try:
                thread_id = await api.start("!deploy service=api version=1.4.2 environment=staging")
                await api.wait(thread_id, "done")
            finally:
                await api.aclose()
            [tool] = await receiver.wait_for("opsgate.tool_call")
            record = await process.wait_for_log(
                lambda r: any(e.get("type") == "action_result" for e in r.get("events", [])), event="thread_events")
        steps = {s.span_id: s for s in receiver.spans if s.name == "opsgate.thread_step"}
    assert tool.service == "opsgate-test" and tool.attributes["opsgate.thread_id"] == thread_id
    assert tool.parent_id in steps and steps[tool.parent_id].trace_id == tool.trace_id
    assert record["trace_id"] == tool.trace_id and len(record["span_id"]) == 16
    assert receiver.content_types and all(t == "application/x-protobuf" for t in receiver.content_types)
