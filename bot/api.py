"""The HTTP API (factor 6): launch a thread, look at it, answer it. Bearer-token protected.

Bad input gets a 4xx with a clear message, never a 5xx: 401 token, 403 not an approver, 404 unknown thread,
409 not waiting for that / already decided, 413 message or body too large, 422 malformed body or arguments.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.errors import (
    Signal,
)
from bot.events import Event, Via
from bot.service import MAX_OFFSET, Service
from bot.store import ThreadSummary
from bot.thread import PendingApproval, ThreadStatus


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
    """The thread a request was accepted into, and its status right after."""

    thread_id: str
    status: ThreadStatus


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
    events: list[Event]
    pending: PendingApproval | None


def service(request: Request) -> Service:
    return request.app.state.runtime.service  # type: ignore[no-any-return]


def token_problem(authorization: str, expected: str | None) -> str | None:
    """Why a request may not use the API (None when the bearer token matches)."""
    if not expected:
        return "the API is disabled: OPSGATE_API_TOKEN is not set"
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        return "missing or wrong bearer token"
    return None


class BearerGate:
    """ASGI middleware: /threads requests are authenticated before anything reads their body, so an anonymous
    caller learns nothing (not even whether its JSON parses)."""

    def __init__(self, app: ASGIApp, expected: str | None, prefix: str = "/threads") -> None:
        self.app = app
        self.expected = expected
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == self.prefix or path.startswith(self.prefix + "/")):
            headers = Headers(scope=scope)
            problem = token_problem(headers.get("authorization", ""), self.expected)
            if problem is not None:
                response = JSONResponse({"detail": problem}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


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
    403: "not an approver, or the four-eyes rule",
    404: "no such thread",
    409: "the thread is not waiting for this (or it was already decided)",
    413: "the message or comment is over OPSGATE_MAX_MESSAGE_CHARS, or the body is too large",
    422: "malformed body, parameters or arguments",
    500: "an internal error: the detail holds an error id to find in opsgate's log",
}
router = APIRouter(prefix="/threads", tags=["threads"], responses={
    code: {"model": ErrorBody, "description": text} for code, text in _ERRORS.items()
})
Svc = Annotated[Service, Depends(service)]


@router.post("", status_code=202, response_model=Accepted)
async def start_thread(body: StartThread, svc: Svc) -> Accepted:
    """Start a thread; the worker continues in the background."""
    thread = await svc.start_thread(body.message, user=body.user, agent=body.agent, via=Via(channel="api"))
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
    return ThreadView(id=thread.id, agent=thread.agent, status=thread.status, events=thread.events,
                      pending=thread.pending)


@router.post("/{thread_id}/responses", status_code=202, response_model=Accepted)
async def respond(thread_id: str, body: Response, svc: Svc) -> Accepted:
    """An approval decision or a message from a person."""
    via = Via(channel="api")
    if isinstance(body, ApprovalResponse):
        thread = await svc.decide(
            thread_id, body.approval_id, approved=body.approved, user=body.user or "api", via=via,
            comment=body.comment, arguments=body.arguments,
        )
    else:
        thread = await svc.add_message(thread_id, body.text, user=body.user, via=via)
    return Accepted(thread_id=thread.id, status=thread.status)
