"""The ASGI app ``opsgate serve`` runs: HTTP API, health, channel routes, and the loops in the same process."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from bot import __version__, telemetry
from bot.agent import Registry
from bot.api import BearerGate, router, signal_handler
from bot.body_limit import BodyLimit
from bot.config import Settings
from bot.errors import Signal, new_error_id
from bot.health import Readiness, ReadinessProbe
from bot.runtime import Loops, Runtime, freeze_startup_heap
from bot.trigger_routes import mount_hooks
from bot.wiring import build_runtime, prepare_database

log = structlog.get_logger("opsgate.app")


def startup_warnings(settings: Settings, registry: Registry | None = None) -> list[str]:
    """Things an operator must know at start-up, the agents' own included."""
    warnings = []
    if not settings.api_token:
        warnings.append("OPSGATE_API_TOKEN is not set: the HTTP API at /threads accepts personal tokens only "
                        "(opsgate tokens create)")
        if not _loopback(settings.host):
            warnings.append(
                f"listening on {settings.host}: the first-run login URL is only offered on 127.0.0.1, so the web "
                "inbox and the API need a personal token (opsgate tokens create --user YOU) or a sign-in link; "
                "set OPSGATE_WEB_SECRET too so sessions survive a restart")
    if settings.api_token and settings.api_trusted_relay:
        warnings.append("OPSGATE_API_TRUSTED_RELAY=true: whoever holds the shared API token may act as any "
                        "user, approvals included")
    if settings.open_mode:
        warnings.append("no approvers configured (OPSGATE_APPROVERS): the local inbox/CLI/API user approves "
                        "everything and the four-eyes rule is off")
    if not settings.model_configured:
        warnings.append("no model configured (OPENAI_API_KEY or OPENAI_BASE_URL): only !commands work")
    for agent in registry or ():
        if agent.configure is not None:
            warnings.extend(agent.configure(settings))
    return warnings


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def create_app(settings: Settings, runtime: Runtime | None = None, *, run_loops: bool = True,
               freeze_heap: bool = False) -> FastAPI:
    """The app; its lifespan prepares the database and runs the worker, outbox and channel loops.

    ``freeze_heap`` (``opsgate serve``) exempts what start-up built from full garbage collections.
    """
    runtime = runtime or build_runtime(settings)
    loops = Loops()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        telemetry.start(settings)
        revision = await prepare_database(settings)
        for warning in startup_warnings(settings, runtime.registry):
            log.warning("startup_warning", message=warning)
        if run_loops:
            loops.start(runtime.loops())
        if freeze_heap:
            freeze_startup_heap()
        log.info("opsgate_started", version=__version__, schema=revision,
                 channels=[c.name for c in runtime.channels], agents=runtime.registry.names,
                 model=settings.model if settings.model_configured else None)
        try:
            yield
        finally:
            await loops.stop()
            await runtime.aclose()
            telemetry.stop(settings)

    app = FastAPI(title="opsgate", version=__version__, lifespan=lifespan,
                  description="Chat-ops with humans in the loop: threads, typed actions, approvals.")
    app.state.runtime = runtime
    app.state.loops = loops
    app.add_exception_handler(Signal, signal_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
    app.include_router(router)
    # Middleware added later runs earlier: the timer sees every request, the body limit runs before the gate.
    app.add_middleware(BearerGate, settings=settings, store=runtime.store)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(telemetry.RequestTimer, routes=lambda: app.router.routes)

    readiness = ReadinessProbe(runtime.store)
    app.add_route("/metrics", telemetry.metrics_endpoint(runtime.store, settings), methods=["GET"],
                  include_in_schema=False)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, object]:
        """Liveness: the process answers (no database access); no authentication."""
        return {"status": "ok", "version": __version__, "loops": sorted(loops.tasks)}

    @app.get("/readyz", tags=["health"], response_model=Readiness,
             responses={503: {"model": Readiness, "description": "the database cannot be written"}})
    async def readyz() -> JSONResponse:
        """Readiness: the database accepts a write now (200), or why not (503); no authentication."""
        result = await readiness.check()
        return JSONResponse(result.model_dump(exclude_none=True), status_code=200 if result.ready else 503)

    mount_hooks(app, settings, runtime.service)
    for channel in runtime.channels:
        channel.mount(app, runtime.service)
    return app


async def _validation_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        problems.append({"field": where, "problem": err.get("msg", "invalid")})
    return JSONResponse({"detail": "invalid request", "problems": problems}, status_code=422)


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    """A bug or an outage: the caller gets an error id to quote, never a trace; the log gets the details."""
    error_id = new_error_id()
    log.error("request_failed", method=request.method, path=request.url.path, error_id=error_id, exc_info=exc)
    return JSONResponse({"detail": f"internal error (error id {error_id}); the details are in opsgate's log"},
                        status_code=500)
