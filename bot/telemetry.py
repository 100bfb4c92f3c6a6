"""The hooks the rest of opsgate calls (one line each), feeding both metrics (bot/metrics.py) and traces
(bot/tracing.py), plus their HTTP side: the /metrics endpoint and a request timer.

Hooks: ``committed`` (journal), ``thread_step`` (worker), ``delivery`` (outbox), ``inbound_mail`` (email channel).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import metrics, tracing
from bot.config import Settings
from bot.errors import DeliveryFailed, DeliveryRetry, ModelUnavailable
from bot.events import Event
from bot.store import OutboxRow, Store
from bot.thread import Thread

log = structlog.get_logger("opsgate.telemetry")


def committed(thread: Thread, events: Sequence[Event]) -> None:
    """Events were committed to a thread."""
    metrics.record_events(thread, events)
    tracing.record_events(thread, events)


@contextmanager
def thread_step(thread_id: str) -> Iterator[None]:
    """Around one worker step on a thread."""
    with tracing.step(thread_id):
        try:
            yield
        except ModelUnavailable:
            metrics.MODEL_ERRORS.labels("unavailable").inc()
            raise


@contextmanager
def delivery(channel: str, row: OutboxRow) -> Iterator[None]:
    """Around one outbox delivery: its outcome and how long the channel took."""
    began, outcome = time.perf_counter(), "sent"
    with tracing.delivery(channel, row):
        try:
            yield
        except DeliveryRetry:
            outcome = "retry"
            raise
        except DeliveryFailed:
            outcome = "failed"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            metrics.DELIVERIES.labels(channel, outcome).inc()
            metrics.DELIVERY_SECONDS.labels(channel).observe(time.perf_counter() - began)


_MAIL_OUTCOMES = {"ignored": "ignored", "duplicate": "ignored", "refused": "refused"}


def inbound_mail(outcome: str) -> None:
    """An inbound mail was handled (started, continued, decided or answered), ignored (noise, duplicates) or
    refused (a decision that failed authentication or authorization)."""
    metrics.INBOUND_MAIL.labels(_MAIL_OUTCOMES.get(outcome, "handled")).inc()


def add_trace_ids(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the active trace and span ids on every log line written inside a span."""
    ids = tracing.current_ids()
    if ids is not None:
        event["trace_id"], event["span_id"] = ids
    return event


# --- HTTP -----------------------------------------------------------------------------------------------------


class RequestTimer:
    """ASGI middleware: every request's duration by method, route template and status (never the raw path)."""

    def __init__(self, app: ASGIApp, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self.app = app
        self.routes = routes  # read per request: channels add their routes after the app is built

    def _template(self, scope: Scope) -> str:
        partial: BaseRoute | None = None
        for route in self.routes():
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return _path(route)
            if match is Match.PARTIAL and partial is None:
                partial = route
        return _path(partial) if partial is not None else "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, status, route = time.perf_counter(), 500, self._template(scope)

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            metrics.HTTP_SECONDS.labels(scope["method"], route, str(status)).observe(time.perf_counter() - began)


def _path(route: BaseRoute) -> str:
    path = str(getattr(route, "path", "") or "unmatched")
    return f"{path}/{{path}}" if isinstance(route, Mount) else path


def metrics_endpoint(store: Store, settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    """GET /metrics; with OPSGATE_METRICS_TOKEN set it needs ``Authorization: Bearer <token>``."""

    async def endpoint(request: Request) -> Response:
        if settings.metrics_token:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), settings.metrics_token.encode()):
                return Response("metrics need the bearer token OPSGATE_METRICS_TOKEN\n", 401,
                                headers={"WWW-Authenticate": "Bearer"})
        return Response(await metrics.render(store, settings), media_type=metrics.CONTENT_TYPE)

    return endpoint


def metrics_listener(store: Store, settings: Settings) -> Callable[[], Awaitable[None]] | None:
    """For `opsgate worker`: a loop serving GET /metrics and /healthz on OPSGATE_METRICS_PORT (None when unset)."""
    if settings.metrics_port is None:
        return None
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def healthz(_: Request) -> Response:
        await store.get_state("healthz")
        return PlainTextResponse("ok\n")

    app = Starlette(routes=[Route("/metrics", metrics_endpoint(store, settings)), Route("/healthz", healthz)])
    config = uvicorn.Config(RequestTimer(app, lambda: app.routes), host=settings.host, port=settings.metrics_port,
                            log_config=None, access_log=False, lifespan="off", ws="none")

    async def serve() -> None:
        log.info("metrics_listening", url=f"http://{settings.host}:{settings.metrics_port}/metrics")
        await uvicorn.Server(config).serve()

    return serve


def start(settings: Settings) -> None:
    """At process start: traces when configured (a log line says where they go)."""
    if tracing.configure(settings) is not None:
        log.info("tracing_enabled", service=settings.otel_service_name,
                 endpoint=settings.otel_traces_endpoint or settings.otel_endpoint)
    logging.getLogger("opentelemetry").setLevel(logging.WARNING)


def stop(settings: Settings) -> None:
    """At process exit: flush traces, retire this process's multi-process metric files."""
    tracing.shutdown()
    metrics.process_exited(settings)
