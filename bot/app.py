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
from bot.config import Settings
from bot.errors import Signal
from bot.runtime import Loops, Runtime
from bot.wiring import build_runtime, prepare_database

log = structlog.get_logger("opsgate.app")


def startup_warnings(settings: Settings, registry: Registry | None = None) -> list[str]:
    """Things an operator must know at start-up, the agents' own included."""
    warnings = []
    if not settings.api_token:
        warnings.append("OPSGATE_API_TOKEN is not set: the HTTP API at /threads refuses every request")
        if not _loopback(settings.host):
            warnings.append(
                f"listening on {settings.host} without OPSGATE_API_TOKEN: the one-time login URL is only offered on "
                "127.0.0.1, so nobody can log in to the web inbox with a token either. This is the safe default; "
                "set OPSGATE_API_TOKEN (and OPSGATE_WEB_SECRET) to use the inbox and the API")
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


def create_app(settings: Settings, runtime: Runtime | None = None, *, run_loops: bool = True) -> FastAPI:
    """The app; its lifespan prepares the database and runs the worker, outbox and channel loops."""
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
    app.include_router(router)
    app.add_middleware(BearerGate, expected=settings.api_token)
    app.add_middleware(telemetry.RequestTimer, routes=lambda: app.router.routes)
    app.add_route("/metrics", telemetry.metrics_endpoint(runtime.store, settings), methods=["GET"],
                  include_in_schema=False)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, object]:
        """Liveness and database reachability; no authentication."""
        await runtime.store.get_state("healthz")
        return {"status": "ok", "version": __version__, "loops": sorted(loops.tasks)}

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
