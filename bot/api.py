"""The HTTP API (factor 6): launch a thread, look at it, answer it. Bearer-token protected.

A personal token acts as its person; the shared OPSGATE_API_TOKEN acts as ``api`` and cannot decide unless
OPSGATE_API_TRUSTED_RELAY is set (see bot/principals.py).

Bad input gets a 4xx with a clear message, never a 5xx: 401 token, 403 not an approver / not your identity,
404 unknown thread, 409 not waiting for that / already decided, 413 message or body too large, 422 malformed
body or arguments.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.config import Settings
from bot.errors import Signal
from bot.events import Event, Via
from bot.principals import BadCredential, PersonalCaller, SharedCaller, acting_user, authenticate
from bot.service import MAX_OFFSET, Service
from bot.store import Store, ThreadSummary
from bot.thread import Outcome, PendingApproval, ThreadStatus

log = structlog.get_logger("opsgate.api")


async def signal_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Signal)
    return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# The length limit is OPSGATE_MAX_MESSAGE_CHARS, checked by the Service for every channel (413 here).
Text = Annotated[str, Field(min_length=1), AfterValidator(_not_blank)]


class StartThread(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: Text
    agent: str | None = Field(None, max_length=64)
    user: str | None = Field(None, max_length=255)


class Accepted(BaseModel):
    """The thread a request was accepted into, and its status (and outcome, once finished) right after."""

    thread_id: str
    status: ThreadStatus
    outcome: Outcome | None = None


class CancelThread(BaseModel):
    """Withdraw the pending request, or stop the running thread (the requester only)."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=2000)
    user: str | None = Field(None, max_length=255)


class ApprovalResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["approval"]
    approval_id: str = Field(min_length=1, max_length=64)
    approved: bool
    comment: str | None = None
    arguments: dict[str, Any] | None = None
    user: str | None = Field(None, max_length=255)


class MessageResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["message"]
    text: Text
    user: str | None = Field(None, max_length=255)


Response = Annotated[ApprovalResponse | MessageResponse, Field(discriminator="type")]


class ThreadView(BaseModel):
    id: str
    agent: str | None
    status: ThreadStatus
    outcome: Outcome | None  # how the latest request ended; None while it runs or waits
    events: list[Event]
    pending: PendingApproval | None


def service(request: Request) -> Service:
    return request.app.state.runtime.service  # type: ignore[no-any-return]


class BearerGate:
    """ASGI middleware: /threads requests are authenticated before anything reads their body, so an anonymous
    caller learns nothing (not even whether its JSON parses). The proven caller goes to ``request.state.caller``."""

    def __init__(self, app: ASGIApp, settings: Settings, store: Store, prefix: str = "/threads") -> None:
        self.app = app
        self.settings = settings
        self.store = store
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == self.prefix or path.startswith(self.prefix + "/")):
            try:
                caller = await authenticate(Headers(scope=scope).get("authorization"), self.settings, self.store)
            except BadCredential as exc:
                response = JSONResponse({"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


def caller(request: Request) -> PersonalCaller | SharedCaller:
    """Who sent this request, as BearerGate proved it."""
    return request.state.caller  # type: ignore[no-any-return]




class Problem(BaseModel):
    """One thing wrong with a request: where, and what."""

    field: str
    problem: str


class ErrorBody(BaseModel):
    """Every error answer of the API: a sentence, and for 422 the problems field by field."""

    detail: str
    problems: list[Problem] | None = None


_ERRORS = {
    400: "the body could not be read (not UTF-8)",
    401: "missing or wrong bearer token, or the API is disabled (OPSGATE_API_TOKEN unset)",
    403: "not an approver, the four-eyes rule, not the requester (cancel), or a user that is not the token's person",
    404: "no such thread",
    409: "the thread is not waiting for this (already decided, expired, or finished)",
    413: "the message or comment is over OPSGATE_MAX_MESSAGE_CHARS, or the body is too large",
    422: "malformed body, parameters or arguments",
    500: "an internal error: the detail holds an error id to find in opsgate's log",
}
router = APIRouter(prefix="/threads", tags=["threads"], responses={
    code: {"model": ErrorBody, "description": text} for code, text in _ERRORS.items()
})
Svc = Annotated[Service, Depends(service)]
Caller = Annotated[PersonalCaller | SharedCaller, Depends(caller)]


@router.post("", status_code=202, response_model=Accepted)
async def start_thread(body: StartThread, svc: Svc, who: Caller) -> Accepted:
    """Start a thread as the token's person (the shared token: as ``api``); the worker continues."""
    user = acting_user(who, body.user, svc.settings, deciding=False)
    thread = await svc.start_thread(body.message, user=user, agent=body.agent, via=Via(channel="api"))
    return Accepted(thread_id=thread.id, status=thread.status)


@router.get("", response_model=list[ThreadSummary])
async def list_threads(
    svc: Svc, status: ThreadStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[ThreadSummary]:
    """Threads, most recently updated first, optionally with one status."""
    return await svc.list_threads(status, limit, offset)


@router.get("/{thread_id}", response_model=ThreadView)
async def get_thread(thread_id: str, svc: Svc) -> ThreadView:
    """A thread with its events and its pending approval."""
    thread = await svc.get_thread(thread_id)
    return ThreadView(id=thread.id, agent=thread.agent, status=thread.status, outcome=thread.outcome,
                      events=thread.events, pending=thread.pending)


@router.post("/{thread_id}/responses", status_code=202, response_model=Accepted)
async def respond(thread_id: str, body: Response, svc: Svc, who: Caller) -> Accepted:
    """An approval decision (personal token, or a trusted relay) or a message from a person."""
    via = Via(channel="api")
    if isinstance(body, ApprovalResponse):
        user = acting_user(who, body.user, svc.settings, deciding=True)
        credential = who.token_id if isinstance(who, PersonalCaller) else "shared-relay"
        log.info("api_decision", thread_id=thread_id, user=user, credential=credential, audit=True)
        thread = await svc.decide(
            thread_id, body.approval_id, approved=body.approved, user=user, via=via,
            comment=body.comment, arguments=body.arguments,
        )
    else:
        user = acting_user(who, body.user, svc.settings, deciding=False)
        thread = await svc.add_message(thread_id, body.text, user=user, via=via)
    return Accepted(thread_id=thread.id, status=thread.status, outcome=thread.outcome)


@router.post("/{thread_id}/cancel", status_code=202, response_model=Accepted)
async def cancel(thread_id: str, svc: Svc, who: Caller, body: CancelThread | None = None) -> Accepted:
    """Withdraw the pending request or stop the thread, as its requester; its outcome is ``cancelled``."""
    body = body or CancelThread(reason=None, user=None)
    user = acting_user(who, body.user, svc.settings, deciding=False)
    thread = await svc.cancel(thread_id, user=user, via=Via(channel="api"), reason=body.reason)
    return Accepted(thread_id=thread.id, status=thread.status, outcome=thread.outcome)
