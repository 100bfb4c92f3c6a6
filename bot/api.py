"""The HTTP API (factor 6): launch a thread, look at it, answer it. Bearer-token protected.

Bad input gets a 4xx with a clear message, never a 5xx: 401 token, 403 not an approver, 404 unknown thread,
409 not waiting for that / already decided, 422 malformed body or arguments.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bot.errors import (
    AlreadyDecided,
    CommandSyntaxError,
    Conflict,
    InvalidArguments,
    NotAuthorized,
    NotWaiting,
    Signal,
    ThreadNotFound,
    UnknownAgent,
)
from bot.events import Event, Via
from bot.service import Service
from bot.store import ThreadSummary
from bot.thread import PendingApproval, ThreadStatus

_STATUS_FOR: list[tuple[type[Signal], int]] = [
    (ThreadNotFound, 404),
    (NotAuthorized, 403),
    (AlreadyDecided, 409),
    (NotWaiting, 409),
    (Conflict, 409),
    (InvalidArguments, 422),
    (UnknownAgent, 422),
    (CommandSyntaxError, 422),
]


def signal_status(exc: Signal) -> int:
    """The HTTP status for a signal raised by the service."""
    return next((code for kind, code in _STATUS_FOR if isinstance(exc, kind)), 400)


async def signal_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Signal)
    return JSONResponse({"detail": str(exc)}, status_code=signal_status(exc))


class StartThread(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=20_000)
    agent: str | None = Field(None, max_length=64)
    user: str | None = Field(None, max_length=255)


class Started(BaseModel):
    thread_id: str
    status: ThreadStatus


class ApprovalResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["approval"]
    approval_id: str = Field(min_length=1, max_length=64)
    approved: bool
    comment: str | None = Field(None, max_length=5000)
    arguments: dict[str, Any] | None = None
    user: str | None = Field(None, max_length=255)


class MessageResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["message"]
    text: str = Field(min_length=1, max_length=20_000)
    user: str | None = Field(None, max_length=255)


Response = Annotated[ApprovalResponse | MessageResponse, Field(discriminator="type")]


class ThreadView(BaseModel):
    id: str
    agent: str | None
    status: ThreadStatus
    events: list[Event]
    pending: PendingApproval | None


class Accepted(BaseModel):
    thread_id: str
    status: ThreadStatus


def service(request: Request) -> Service:
    return request.app.state.runtime.service  # type: ignore[no-any-return]


def require_token(request: Request) -> None:
    """Every /threads route needs ``Authorization: Bearer $OPSGATE_API_TOKEN``; no token set means no access."""
    expected = request.app.state.runtime.settings.api_token
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if not expected:
        raise HTTPException(401, "the API is disabled: OPSGATE_API_TOKEN is not set",
                            headers={"WWW-Authenticate": "Bearer"})
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/threads", dependencies=[Depends(require_token)], tags=["threads"])
Svc = Annotated[Service, Depends(service)]


@router.post("", status_code=202, response_model=Started)
async def start_thread(body: StartThread, svc: Svc) -> Started:
    """Start a thread; the worker continues in the background."""
    thread = await svc.start_thread(body.message, user=body.user, agent=body.agent, via=Via(channel="api"))
    return Started(thread_id=thread.id, status=thread.status)


@router.get("", response_model=list[ThreadSummary])
async def list_threads(
    svc: Svc, status: ThreadStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0,
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
