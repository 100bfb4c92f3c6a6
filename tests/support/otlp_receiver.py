"""OtlpReceiver: a real OTLP/HTTP trace receiver on loopback (POST /v1/traces, protobuf), recording every span.

Decodes ExportTraceServiceRequest with the opentelemetry-proto messages, as a collector would, and answers with an
empty ExportTraceServiceResponse.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.servers import BackgroundServer


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived: ids as hex, attributes as plain values, the resource's service name."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    service: str
    start_ns: int
    end_ns: int
    error: bool


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class OtlpReceiver:
    """``with OtlpReceiver() as receiver:`` then OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.content_types: list[str] = []
        self._server = BackgroundServer(Starlette(routes=[Route("/v1/traces", self._receive, methods=["POST"])]),
                                        name="otlp-receiver")

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> OtlpReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop()

    async def wait_for(self, name: str, count: int = 1, timeout: float = 20.0) -> list[ReceivedSpan]:  # noqa: ASYNC109
        """Spans called ``name`` once at least ``count`` arrived (or AssertionError)."""
        deadline = time.monotonic() + timeout
        while len(found := [s for s in self.spans if s.name == name]) < count:
            assert time.monotonic() < deadline, f"only {len(found)} {name} spans: {[s.name for s in self.spans]}"
            await asyncio.sleep(0.05)
        return found

    async def _receive(self, request: Request) -> Response:
        self.content_types.append(request.headers.get("content-type", ""))
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        for resource_spans in message.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(ReceivedSpan(
                        name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        attributes={kv.key: _value(kv.value) for kv in span.attributes},
                        service=str(resource.get("service.name", "")), start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano, error=span.status.code == 2,
                    ))
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")
