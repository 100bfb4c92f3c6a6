"""ScriptedModelServer: an honest OpenAI-compatible Chat Completions server driven by a script of replies.

Like pydantic-ai's FunctionModel/TestModel, but over a real socket so the real ``openai`` client is exercised.
Replies are taken in order from a thread-safe queue; when it is empty an optional ``responder(request_json)``
decides, and without one the server answers HTTP 500 "script exhausted" so a test can never pass by accident.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.model_replies import (
    HttpErrorReply,
    Reply,
    ScriptedCall,
    SlowReply,
    TextReply,
    ToolCallsReply,
    http_error,
    json_text,
    raw_arguments,
    slow,
    text,
    tool_call,
    tool_calls,
)
from tests.support.servers import BackgroundServer

__all__ = [
    "RecordedRequest", "Reply", "ScriptedCall", "ScriptedModelServer", "Responder",
    "http_error", "json_text", "raw_arguments", "slow", "text", "tool_call", "tool_calls",
]

Responder = Callable[[dict[str, Any]], Reply]

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_exceeded"}


@dataclass(frozen=True)
class RecordedRequest:
    """One POST /v1/chat/completions as received: parsed JSON, lower-cased headers, raw body."""

    json: dict[str, Any]
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.time)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's ``messages`` list."""
        return list(self.json.get("messages") or [])

    @property
    def tool_names(self) -> list[str]:
        """Names of the function tools offered in this request."""
        return [t.get("function", {}).get("name", "") for t in self.json.get("tools") or []]


class ScriptedModelServer:
    """A Chat Completions server on 127.0.0.1 answering from a script; records every request."""

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        responder: Responder | None = None,
        api_key: str | None = None,
        model: str = "scripted-model",
    ) -> None:
        self.responder = responder
        self.api_key = api_key  # when set, any other bearer token gets 401 like the real API
        self.model = model
        self.requests: list[RecordedRequest] = []
        self.failures: list[str] = []  # problems the server itself reported (script exhausted, bad request)
        self._script: deque[Reply] = deque(replies)
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # wakes slow replies so stop() need not wait for them
        app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
        ])
        self._server = BackgroundServer(app, name="scripted-model-server")

    # lifecycle

    @property
    def base_url(self) -> str:
        """The OpenAI base URL to configure, e.g. http://127.0.0.1:40123/v1."""
        return f"{self._server.url}/v1"

    def start(self) -> ScriptedModelServer:
        """Start serving; returns self once the socket accepts."""
        self._stopping.clear()
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and join the server thread."""
        self._stopping.set()
        self._server.stop()

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # script

    def script(self, *replies: Reply) -> ScriptedModelServer:
        """Append replies to the script (answered in order, one per request)."""
        with self._lock:
            self._script.extend(replies)
        return self

    @property
    def remaining(self) -> int:
        """How many scripted replies have not been used yet."""
        with self._lock:
            return len(self._script)

    def _next_reply(self, request_json: dict[str, Any], number: int) -> Reply:
        with self._lock:
            if self._script:
                return self._script.popleft()
        if self.responder is not None:
            try:
                return self.responder(request_json)
            except Exception:
                message = f"responder raised on request #{number}:\n{traceback.format_exc()}"
                self.failures.append(message)
                return http_error(500, body=_error_body(500, message))
        message = (f"ScriptedModelServer: script exhausted at request #{number} "
                   f"(script one more reply or pass a responder)")
        self.failures.append(message)
        return http_error(500, body=_error_body(500, message))

    # assertions

    # A deadline parameter (not asyncio.timeout) so the failure message can say what was expected.
    async def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[RecordedRequest]:  # noqa: ASYNC109
        """Wait until at least ``n`` chat requests arrived; returns them or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {n} model requests within {timeout}s, got {len(self.requests)}")
            await asyncio.sleep(0.02)
        return list(self.requests)

    def last_user_content(self) -> str:
        """Text of the last ``user`` message in the most recent request."""
        if not self.requests:
            raise AssertionError("the model server received no request")
        for message in reversed(self.requests[-1].messages):
            if message.get("role") == "user":
                return _content_text(message.get("content"))
        raise AssertionError("the last request has no user message")

    def all_text(self) -> str:
        """Every message content and tool-call argument string of every request, one per line."""
        parts: list[str] = []
        for request in self.requests:
            for message in request.messages:
                parts.append(_content_text(message.get("content")))
                for call in message.get("tool_calls") or []:
                    parts.append(str(call.get("function", {}).get("arguments", "")))
        return "\n".join(part for part in parts if part)

    # HTTP handlers (run on the server thread's loop)

    async def _models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [
            {"id": self.model, "object": "model", "created": 0, "owned_by": "opsgate-tests"},
        ]})

    async def _chat_completions(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return _error_response(401, "Incorrect API key provided.")
        try:
            payload = json.loads(body)
        except ValueError:
            return self._bad_request(f"request body is not JSON: {body[:200]!r}")
        if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
            return self._bad_request("'messages' is a required property")
        if payload.get("stream"):
            return self._bad_request("ScriptedModelServer does not support stream=true")
        self.requests.append(RecordedRequest(json=payload, headers=headers, body=body))
        reply = self._next_reply(payload, len(self.requests))
        while isinstance(reply, SlowReply):
            deadline = time.monotonic() + reply.seconds
            while time.monotonic() < deadline:
                if self._stopping.is_set():
                    return _error_response(503, "ScriptedModelServer is stopping")
                await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            reply = reply.reply
        if isinstance(reply, HttpErrorReply):
            return _error_response(reply.status, body=reply.body, retry_after=reply.retry_after)
        return JSONResponse(self._completion(payload, reply, len(body)))

    def _bad_request(self, message: str) -> Response:
        self.failures.append(message)
        return _error_response(400, message)

    def _completion(self, payload: dict[str, Any], reply: TextReply | ToolCallsReply, size: int) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if isinstance(reply, TextReply):
            message["content"] = reply.content
            finish_reason = "stop"
        else:
            message["content"] = reply.content
            message["tool_calls"] = [
                {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                 "function": {"name": call.name, "arguments": call.arguments}}
                for call in reply.calls
            ]
            finish_reason = "tool_calls"
        prompt_tokens = max(1, size // 4)
        completion_tokens = max(1, len(json.dumps(message)) // 4)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload.get("model") or self.model,
            "system_fingerprint": "fp_scripted",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


def _content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _error_response(
    status: int, message: str | None = None, *, body: Any = None, retry_after: float | None = None
) -> Response:
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else None
    if isinstance(body, bytes):  # verbatim, e.g. an HTML page from a proxy in front of the model
        return Response(body, status_code=status, headers=headers, media_type="text/html")
    if body is None:
        body = _error_body(status, message or f"scripted HTTP {status}")
    elif isinstance(body, str):
        body = _error_body(status, body)
    return JSONResponse(body, status_code=status, headers=headers)
