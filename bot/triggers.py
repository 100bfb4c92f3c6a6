"""Threads started by events instead of people: Alertmanager notifications and any system's JSON (factor 11).

``POST /hooks/alertmanager`` takes Alertmanager's webhook (version 4): one thread per alert group, every new
notification of the group appended to it, repeats recorded once. ``POST /hooks/{agent}`` takes a JSON object for
one agent (``message``, optional ``group`` to continue a thread, optional ``Idempotency-Key`` header).

Both need ``Authorization: Bearer $OPSGATE_HOOK_TOKEN`` (Alertmanager sends it with ``http_config.authorization``;
it cannot sign bodies, so a bearer token it is), are read only up to OPSGATE_HOOK_MAX_BYTES, and are
de-duplicated by a ref written in the same transaction as the message. A thread a trigger starts lives in
OPSGATE_TRIGGER_SLACK_CHANNEL when that is set, so people follow, answer and approve there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import structlog
from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.alertmanager import NOTIFICATION, SOURCE, Notification
from bot.config import Settings
from bot.errors import DuplicateRef, NotWaiting, UnknownAgent
from bot.events import UserMessage, Via, new_id
from bot.people import identity_of
from bot.service import Service
from bot.store import Record, Ref
from bot.thread import Thread

log = structlog.get_logger("opsgate.triggers")

DEDUP_REF = "hook"  # one per accepted delivery: a repeat finds it and changes nothing
GROUP_REF = "hook-group"  # a trigger's group (alert group, generic group) -> its thread

Outcome = Literal["started", "continued", "duplicate"]


class Accepted(BaseModel):
    """What a hook did with a delivery."""

    thread_id: str
    outcome: Outcome


class Detail(BaseModel):
    """Why a hook delivery was refused."""

    detail: str


_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Detail, "description": "no or a wrong bearer token"},
    404: {"model": Detail, "description": "hooks are off (no OPSGATE_HOOK_TOKEN), or no such agent"},
    413: {"model": Detail, "description": "the body is larger than OPSGATE_HOOK_MAX_BYTES"},
    422: {"model": Detail, "description": "the body is not what this hook takes"},
}


TRIGGER_PREFIXES = ("hook:", "schedule:")


def started_by_trigger(thread: Thread) -> bool:
    """Whether a hook, a schedule or an Alertmanager notification started ``thread`` (its requester is the
    trigger's source name, never a person's identity)."""
    requester = thread.requester or ""
    return requester == SOURCE or requester.startswith(TRIGGER_PREFIXES)


class GenericHook(BaseModel):
    """``POST /hooks/{agent}``: a message for the agent, optionally continuing the thread of ``group``."""

    model_config = ConfigDict(extra="allow")  # the sender's other fields are shown to the agent as JSON
    message: str | None = Field(None, min_length=1)
    group: str | None = Field(None, min_length=1, max_length=200)


class Triggers:
    """Starts or continues threads for triggers (hooks and schedules) through the Service, like any channel."""

    def __init__(self, settings: Settings, service: Service) -> None:
        self.settings = settings
        self.service = service

    def via(self, source: str) -> Via:
        """Where a triggered thread lives: the configured Slack channel (people follow it there) or nowhere."""
        if self.settings.trigger_slack_channel and self.settings.slack_enabled:
            return Via(channel="slack", conversation=self.settings.trigger_slack_channel)
        return Via(channel="hook", conversation=source)

    async def deliver(
        self, *, agent: str, source: str, text: str, delivery: str, group: str | None,
        prepare: Callable[[str], Awaitable[None]] | None = None,
    ) -> Accepted:
        """Start the group's thread, or append to it; a delivery seen before changes nothing. ``prepare`` runs with
        the thread's id before its message is stored: the worker may take the thread up at once, and what the
        agent reads first (an alert's details) must already be there."""
        self.service.registry.get(agent)  # UnknownAgent before anything is stored
        dedup = Ref(channel=DEDUP_REF, key=f"{source}:{delivery}")
        group_ref = Ref(channel=GROUP_REF, key=f"{source}:{group}") if group else None
        for _ in range(3):  # a concurrent first delivery of the same group may create the thread under us
            seen = await self.service.store.get_ref(dedup.channel, dedup.key)
            if seen is not None and seen.thread_id:
                return Accepted(thread_id=seen.thread_id, outcome="duplicate")
            known = await self.service.store.get_ref(group_ref.channel, group_ref.key) if group_ref else None
            try:
                if known is not None and known.thread_id:
                    if prepare is not None:
                        await prepare(known.thread_id)
                    await self._continue(known.thread_id, text, source, dedup)
                    return Accepted(thread_id=known.thread_id, outcome="continued")
                thread_id = new_id()
                if prepare is not None:
                    await prepare(thread_id)
                thread = await self.service.start_thread(
                    text, user=source, via=self.via(source), agent=agent,
                    refs=[r for r in (group_ref, dedup) if r is not None], thread_id=thread_id)
                log.info("trigger_started", source=source, agent=agent, thread_id=thread.id)
                return Accepted(thread_id=thread.id, outcome="started")
            except DuplicateRef:
                continue
        raise DuplicateRef(f"{source} delivery {delivery} kept colliding; retry it")

    async def _continue(self, thread_id: str, text: str, source: str, dedup: Ref) -> None:
        via = Via(channel="hook", conversation=source)
        try:
            await self.service.add_message(thread_id, text, user=source, via=via, refs=[dedup])
        except NotWaiting:  # waiting for an approval: keep the news in the thread all the same
            message = UserMessage(text=text, user=identity_of(source), via=via)
            await self.service.journal.append_independent(thread_id, [message], refs=[dedup])


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


def alert_agent(service: Service, settings: Settings) -> str:
    """The agent for Alertmanager: OPSGATE_ALERT_AGENT, else the one that declares it handles alerts."""
    if settings.alert_agent:
        return settings.alert_agent
    handlers = [a.name for a in service.registry if a.alerts]
    return handlers[0] if handlers else service.registry.default


def mount_hooks(app: FastAPI, settings: Settings, service: Service) -> None:
    """POST /hooks/alertmanager and POST /hooks/{agent}; refused (404) while OPSGATE_HOOK_TOKEN is unset."""
    triggers = Triggers(settings, service)

    async def guarded(request: Request) -> bytes | JSONResponse:
        if not settings.hook_token:
            return _problem(404, "hooks are off: set OPSGATE_HOOK_TOKEN to accept them")
        if not _authorized(request, settings):
            return _problem(401, "a hook needs Authorization: Bearer <OPSGATE_HOOK_TOKEN>", **{
                "WWW-Authenticate": "Bearer"})
        body = await _body(request, settings.hook_max_bytes)
        if body is None:
            return _problem(413, f"the hook body is larger than {settings.hook_max_bytes} bytes "
                                 "(OPSGATE_HOOK_MAX_BYTES)")
        return body

    @app.post("/hooks/alertmanager", tags=["hooks"], status_code=202, response_model=Accepted, responses=_REFUSALS,
              openapi_extra=_body_schema(Notification))
    async def alertmanager(request: Request) -> Any:
        """Alertmanager's webhook (version 4): one thread per groupKey; resolved and new alerts append."""
        body = await guarded(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            notification = Notification.model_validate_json(body)
        except ValidationError as exc:
            return _problem(422, f"not an Alertmanager version 4 notification: {_first_problem(exc)}")

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
        body = await guarded(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            hook = GenericHook.model_validate_json(body)
        except ValidationError as exc:
            return _problem(422, f"expected a JSON object: {_first_problem(exc)}")
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


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{where}: {err['msg']}"
