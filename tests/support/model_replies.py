"""Reply specs for the scripted model server: what the next Chat Completions call answers.

Each constructor returns an immutable spec; ``model_server`` renders it in OpenAI's documented response shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScriptedCall:
    """One function tool call; ``arguments`` is the raw string sent to the client (normally JSON)."""

    name: str
    arguments: str


@dataclass(frozen=True)
class ToolCallsReply:
    """An assistant message with one or more tool calls (finish_reason "tool_calls")."""

    calls: tuple[ScriptedCall, ...]
    content: str | None = None


@dataclass(frozen=True)
class TextReply:
    """An assistant message with plain content and no tool call (finish_reason "stop")."""

    content: str


@dataclass(frozen=True)
class HttpErrorReply:
    """An HTTP error with an OpenAI-style error body and an optional Retry-After header."""

    status: int
    retry_after: float | None = None
    body: Any = None


@dataclass(frozen=True)
class SlowReply:
    """``reply`` after sleeping ``seconds`` (for client timeouts and concurrency)."""

    seconds: float
    reply: Reply


Reply = ToolCallsReply | TextReply | HttpErrorReply | SlowReply


def tool_call(name: str, /, reason: str | None = None, **arguments: Any) -> ToolCallsReply:
    """A single tool call ``name(**arguments)``; ``reason`` is added to the arguments when given."""
    if reason is not None:
        arguments["reason"] = reason
    return ToolCallsReply(calls=(ScriptedCall(name, json.dumps(arguments)),))


def tool_calls(*replies: ToolCallsReply, content: str | None = None) -> ToolCallsReply:
    """Several tool calls in one assistant message (parallel tool calls)."""
    return ToolCallsReply(calls=tuple(call for reply in replies for call in reply.calls), content=content)


def raw_arguments(name: str, arguments: str) -> ToolCallsReply:
    """A tool call whose arguments string is sent verbatim (e.g. "not json")."""
    return ToolCallsReply(calls=(ScriptedCall(name, arguments),))


def text(content: str) -> TextReply:
    """A plain-text answer with no tool call."""
    return TextReply(content)


def json_text(obj: Any) -> TextReply:
    """A JSON document in the message content (models that ignore tools; the fallback parser path)."""
    return TextReply(json.dumps(obj))


def http_error(status: int, retry_after: float | None = None, body: Any = None) -> HttpErrorReply:
    """HTTP ``status``; ``body`` replaces the OpenAI error object (str: its message, bytes: raw)."""
    return HttpErrorReply(status, retry_after, body)


def slow(seconds: float, reply: Reply) -> SlowReply:
    """Delay ``reply`` by ``seconds``."""
    return SlowReply(seconds, reply)
