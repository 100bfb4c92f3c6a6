"""The HTTP side of triggers: ``POST /hooks/alertmanager`` and ``POST /hooks/{agent}`` (bot/triggers.py says what
they do). Apart from the rules so that a process serving no HTTP (``opsgate worker``, whose schedules start
threads through ``Triggers``) does not import FastAPI: 0.17 s of CPU at every start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, TypeVar

from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.alertmanager import NOTIFICATION, SOURCE, Notification
from bot.config import Settings
from bot.errors import UnknownAgent, first_problem
from bot.service import Service
from bot.store import Record
from bot.triggers import Accepted, Triggers, alert_agent

M = TypeVar("M", bound=BaseModel)


class GenericHook(BaseModel):
    """``POST /hooks/{agent}``: a message for the agent, optionally continuing the thread of ``group``."""

    model_config = ConfigDict(extra="allow")  # the sender's other fields are shown to the agent as JSON
    message: str | None = Field(None, min_length=1)
    group: str | None = Field(None, min_length=1, max_length=200)


class Detail(BaseModel):
    """Why a hook delivery was refused."""

    detail: str


_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Detail, "description": "no or a wrong bearer token"},
    404: {"model": Detail, "description": "hooks are off (no OPSGATE_HOOK_TOKEN), or no such agent"},
    413: {"model": Detail, "description": "the body is larger than OPSGATE_HOOK_MAX_BYTES"},
    422: {"model": Detail, "description": "the body is not what this hook takes"},
}



def _authorized(request: Request, settings: Settings) -> bool:
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    expected = settings.hook_token or ""
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), expected)


async def _body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes (nothing more is read)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _problem(status: int, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers or None)


def mount_hooks(app: FastAPI, settings: Settings, service: Service) -> None:
    """POST /hooks/alertmanager and POST /hooks/{agent}; refused (404) while OPSGATE_HOOK_TOKEN is unset."""
    triggers = Triggers(settings, service)

    async def guarded(request: Request, model: type[M], expected: str) -> tuple[M, bytes] | JSONResponse:
        """The hook's body, parsed as ``model``, or the refusal: hooks off, no token, too large, not ``expected``."""
        if not settings.hook_token:
            return _problem(404, "hooks are off: set OPSGATE_HOOK_TOKEN to accept them")
        if not _authorized(request, settings):
            return _problem(401, "a hook needs Authorization: Bearer <OPSGATE_HOOK_TOKEN>", **{
                "WWW-Authenticate": "Bearer"})
        body = await _body(request, settings.hook_max_bytes)
        if body is None:
            return _problem(413, f"the hook body is larger than {settings.hook_max_bytes} bytes "
                                 "(OPSGATE_HOOK_MAX_BYTES)")
        try:
            return model.model_validate_json(body), body
        except ValidationError as exc:
            return _problem(422, f"{expected}: {first_problem(exc)}")

    @app.post("/hooks/alertmanager", tags=["hooks"], status_code=202, response_model=Accepted, responses=_REFUSALS,
              openapi_extra=_body_schema(Notification))
    async def alertmanager(request: Request) -> Any:
        """Alertmanager's webhook (version 4): one thread per groupKey; resolved and new alerts append."""
        parsed = await guarded(request, Notification, "not an Alertmanager version 4 notification")
        if isinstance(parsed, JSONResponse):
            return parsed
        notification, _ = parsed

        async def keep(thread_id: str) -> None:  # the agents read the alerts' labels and annotations from here
            await service.store.add_record(Record(  # keyed by thread too: a lost race for a new group leaves no gap
                owner=SOURCE, kind=NOTIFICATION, key=f"{thread_id}:{notification.fingerprint}", tag=thread_id,
                body=notification.model_dump(mode="json")))

        try:
            accepted = await triggers.deliver(
                agent=alert_agent(service, settings), source=SOURCE, text=notification.text(),
                delivery=notification.fingerprint, group=notification.group_id, prepare=keep)
        except UnknownAgent as exc:
            return _problem(404, f"{exc} (OPSGATE_ALERT_AGENT)")
        return JSONResponse(accepted.model_dump(), status_code=202)

    @app.post("/hooks/{agent}", tags=["hooks"], status_code=202, response_model=Accepted, responses=_REFUSALS,
              openapi_extra=_body_schema(GenericHook))
    async def generic(request: Request, agent: str = Path(json_schema_extra={"enum": service.registry.names})) -> Any:
        """JSON for one agent: ``message`` (or the whole object is shown), optional ``group``; Idempotency-Key."""
        parsed = await guarded(request, GenericHook, "expected a JSON object")
        if isinstance(parsed, JSONResponse):
            return parsed
        hook, body = parsed
        extra = hook.model_extra or {}
        text = hook.message or json.dumps(extra, indent=1, sort_keys=True)
        if hook.message and extra:
            text += "\n\n" + json.dumps(extra, indent=1, sort_keys=True)
        delivery = request.headers.get("idempotency-key", "")[:200] or hashlib.sha256(body).hexdigest()[:40]
        try:
            accepted = await triggers.deliver(agent=agent, source=f"hook:{agent}"[:64], text=text,
                                              delivery=delivery, group=hook.group)
        except UnknownAgent as exc:
            return _problem(404, str(exc))
        return JSONResponse(accepted.model_dump(), status_code=202)


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The request body's JSON schema for the OpenAPI document, its ``$defs`` inlined (every client reads it)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        return [inline(v) for v in node] if isinstance(node, list) else node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}
