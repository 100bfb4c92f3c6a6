"""Model calls through any OpenAI-compatible Chat Completions endpoint (factors 1 and 4).

``ChatModel`` is the small protocol the engine needs; ``OpenAIChatModel`` implements it with the ``openai``
package, retrying transport errors and 429/5xx with backoff before giving up with ModelUnavailable.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import Any, Protocol

import openai
import structlog
from pydantic import BaseModel

from bot.actions import ActionSchema
from bot.config import Settings
from bot.errors import ModelRefused, ModelUnavailable

log = structlog.get_logger("opsgate.llm")


class ModelReply(BaseModel):
    """What came back: at most one tool call (name + raw JSON arguments) and/or text content."""

    model: str
    tool_name: str | None = None
    tool_arguments: str | None = None
    extra_tool_calls: int = 0
    content: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0


class ModelOptions(BaseModel):
    """Per-call settings an agent chooses (recorded on the model-call event); None: the server's default."""

    temperature: float | None = None
    timeout: float | None = None
    max_tokens: int | None = None  # bounds a runaway answer (one tool call is short)


class ChatModel(Protocol):
    name: str

    async def complete(
        self, messages: list[dict[str, str]], tools: Sequence[ActionSchema], options: ModelOptions | None = None
    ) -> ModelReply:
        """Ask for exactly one tool call among ``tools``."""
        ...


_DEFINITIONS: dict[int, tuple[Sequence[ActionSchema], list[dict[str, Any]]]] = {}


def cached_tool_definitions(tools: Sequence[ActionSchema]) -> list[dict[str, Any]]:
    """tool_definitions, memoised per (long-lived, immutable) tools tuple such as ``Agent.schemas``."""
    hit = _DEFINITIONS.get(id(tools))
    if hit is None or hit[0] is not tools:
        hit = _DEFINITIONS[id(tools)] = (tools, tool_definitions(tools))
    return hit[1]


def tool_definitions(tools: Sequence[ActionSchema]) -> list[dict[str, Any]]:
    """Function tools from action schemas, each with an optional ``reason`` the approver will see."""
    definitions = []
    for tool in tools:
        parameters = {**tool.parameters, "properties": dict(tool.parameters.get("properties", {}))}
        parameters.setdefault("type", "object")
        if tool.name not in ("done_for_now", "request_more_information") and "reason" not in parameters["properties"]:
            parameters["properties"]["reason"] = {
                "type": "string",
                "description": "One short sentence on what changes and why, shown to the approver as your summary.",
            }
        definitions.append({
            "type": "function",
            "function": {"name": tool.name, "description": tool.description, "parameters": parameters},
        })
    return definitions


_RETRYABLE = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError, openai.InternalServerError)


class OpenAIChatModel:
    """An OpenAI-compatible endpoint; transport errors and 429/5xx are retried with jittered backoff."""

    def __init__(self, settings: Settings) -> None:
        self.name = settings.model
        self._retries = settings.model_retries
        self._client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key or "not-needed",
            base_url=settings.openai_base_url,
            timeout=settings.model_timeout,
            max_retries=0,  # our own loop, so every attempt is logged and bounded
        )

    async def complete(
        self, messages: list[dict[str, str]], tools: Sequence[ActionSchema], options: ModelOptions | None = None
    ) -> ModelReply:
        delay = 0.5
        extra: dict[str, Any] = {}
        if options is not None and options.temperature is not None:
            extra["temperature"] = options.temperature
        if options is not None and options.timeout is not None:
            extra["timeout"] = options.timeout
        if options is not None and options.max_tokens is not None:
            extra["max_tokens"] = options.max_tokens
        for attempt in range(self._retries + 1):
            started = time.perf_counter()
            try:
                response = await self._client.chat.completions.create(  # type: ignore[call-overload]
                    model=self.name, messages=messages, tools=cached_tool_definitions(tools), tool_choice="required",
                    **extra,
                )
            except _RETRYABLE as exc:
                wait = _retry_after(exc) or delay * (1 + random.random() / 2)
                log.warning("model_retry", attempt=attempt + 1, error=type(exc).__name__, wait_s=round(wait, 2))
                if attempt == self._retries:
                    raise ModelUnavailable(f"model server unavailable: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(wait)
                delay = min(delay * 2, 30.0)
                continue
            except openai.APIStatusError as exc:  # 4xx other than 429: retrying will not help
                refusal = f"the model server refused the request: HTTP {exc.status_code}: {exc.message}"
                raise ModelRefused(refusal) from exc
            except openai.APIError as exc:
                raise ModelUnavailable(f"model server error: {exc}") from exc
            return _reply(response, self.name, int((time.perf_counter() - started) * 1000))
        raise ModelUnavailable("model server unavailable")

    async def aclose(self) -> None:
        await self._client.close()


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(float(value), 60.0) if value else None
    except ValueError:
        return None


def _reply(response: Any, model: str, latency_ms: int) -> ModelReply:
    choice = response.choices[0] if response.choices else None
    message = choice.message if choice else None
    calls = list(getattr(message, "tool_calls", None) or [])
    first = calls[0] if calls else None
    usage = response.usage
    return ModelReply(
        model=getattr(response, "model", None) or model,
        tool_name=first.function.name if first else None,
        tool_arguments=first.function.arguments if first else None,
        extra_tool_calls=max(len(calls) - 1, 0),
        content=getattr(message, "content", None),
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        latency_ms=latency_ms,
    )
