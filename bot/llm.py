"""Model calls through any OpenAI-compatible Chat Completions endpoint (factors 1 and 4).

``ChatModel`` is the small protocol the engine needs; ``OpenAIChatModel`` implements it as one POST to
``{OPENAI_BASE_URL}/chat/completions`` over aiohttp, retrying transport errors and 429/5xx with backoff before
giving up with ModelUnavailable. Not through the ``openai`` package: importing it costs 1.4 s of CPU (its
hundreds of generated types), paid by every worker at start-up and every CLI command, for one endpoint whose
request and answer are a few fields; the answer is validated here against the fields we read. aiohttp rather
than httpx: a call costs ~1.1 ms of CPU instead of ~2.8 ms (C parser, fewer layers), and the model call was
the largest part of a worker's CPU per step (benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment  # type: ignore[attr-defined]

import aiohttp
import structlog
from pydantic import BaseModel, BeforeValidator, ValidationError

from bot import __version__
from bot.actions import ActionSchema
from bot.config import Settings
from bot.errors import ModelRefused, ModelUnavailable, first_problem

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


_DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _arguments_text(value: Any) -> Any:
    # Some servers (older Ollama, some proxies) send the arguments as a JSON object, not as its text.
    return json.dumps(value) if isinstance(value, dict) else value


class _Function(BaseModel):
    name: str
    arguments: Annotated[str, BeforeValidator(_arguments_text)]


class _ToolCall(BaseModel):
    function: _Function


class _Message(BaseModel):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(BaseModel):
    message: _Message


class _Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Completion(BaseModel):
    """The part of a Chat Completions answer we read; any other field is ignored."""

    model: str | None = None
    choices: list[_Choice]
    usage: _Usage | None = None


class _Retryable(Exception):
    """One attempt failed in a way another attempt may not (transport error, 429, 5xx)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class OpenAIChatModel:
    """An OpenAI-compatible endpoint; transport errors and 429/5xx are retried with jittered backoff."""

    def __init__(self, settings: Settings) -> None:
        self.name = settings.model
        self._retries = settings.model_retries
        self._timeout = settings.model_timeout
        self._url = (settings.openai_base_url or _DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {settings.openai_api_key or 'not-needed'}",
                         "User-Agent": f"opsgate/{__version__}"}
        self._proxy = _proxy_for(self._url)
        self._session: aiohttp.ClientSession | None = None  # made in the event loop that first calls

    async def complete(
        self, messages: list[dict[str, str]], tools: Sequence[ActionSchema], options: ModelOptions | None = None
    ) -> ModelReply:
        body: dict[str, Any] = {"model": self.name, "messages": messages, "tools": cached_tool_definitions(tools),
                                "tool_choice": "required"}
        timeout = self._timeout
        if options is not None:
            if options.temperature is not None:
                body["temperature"] = options.temperature
            if options.max_tokens is not None:
                body["max_tokens"] = options.max_tokens
            if options.timeout is not None:
                timeout = options.timeout
        delay = 0.5
        for attempt in range(self._retries + 1):
            started = time.perf_counter()
            try:
                completion = await self._post(body, seconds=timeout)
            except _Retryable as exc:
                wait = exc.retry_after or delay * (1 + random.random() / 2)
                log.warning("model_retry", attempt=attempt + 1, error=str(exc), wait_s=round(wait, 2))
                if attempt == self._retries:
                    raise ModelUnavailable(f"model server unavailable: {exc}") from exc
                await asyncio.sleep(wait)
                delay = min(delay * 2, 30.0)
                continue
            return _reply(completion, self.name, int((time.perf_counter() - started) * 1000))
        raise ModelUnavailable("model server unavailable")  # pragma: no cover (the loop returns or raises)

    async def _post(self, body: dict[str, Any], *, seconds: float) -> _Completion:
        """One attempt: the validated answer, _Retryable, ModelRefused (4xx) or ModelUnavailable (a broken answer)."""
        if self._session is None or self._session.closed:
            # As many calls in flight as the worker runs. The proxy is read from the environment once (trust_env
            # would read it, and ~/.netrc, in a thread on every call).
            self._session = aiohttp.ClientSession(headers=self._headers, connector=aiohttp.TCPConnector(limit=1000))
        try:
            async with self._session.post(self._url, json=body, timeout=aiohttp.ClientTimeout(total=seconds),
                                          proxy=self._proxy, allow_redirects=False) as response:
                content = await response.read()
                status, reason, headers = response.status, response.reason, response.headers
        except TimeoutError as exc:
            raise _Retryable(f"no answer within {seconds:g} s") from exc
        except aiohttp.ClientError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}: {_error_message(content, reason)}", _retry_after(headers))
        if status >= 300:  # a 4xx (or a redirect, not followed): asking again will not help
            refusal = _error_message(content, reason)
            raise ModelRefused(f"the model server refused the request: HTTP {status}: {refusal}")
        try:
            return _Completion.model_validate_json(content)
        except ValidationError as exc:
            raise ModelUnavailable(
                f"model server error: the answer is not a chat completion ({first_problem(exc)})"
            ) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY; NO_PROXY honoured)."""
    parts = urlsplit(url)
    if proxy_bypass_environment(parts.hostname or ""):
        return None
    proxies = getproxies_environment()
    return proxies.get(parts.scheme) or proxies.get("all")


def _error_message(content: bytes, reason: str | None) -> str:
    """The server's own words: ``error.message`` of an OpenAI-style error body, else the start of the body."""
    try:
        error = json.loads(content).get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str) and message:
            return message[:500]
    except (ValueError, AttributeError):
        pass
    return content[:200].decode("utf-8", "replace").strip() or reason or "no reason given"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait (``retry-after-ms`` or ``retry-after`` in seconds), at most 60."""
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(header)
        try:
            if value:
                return min(max(float(value) * scale, 0.0), 60.0)
        except ValueError:
            continue
    return None


def _reply(completion: _Completion, model: str, latency_ms: int) -> ModelReply:
    message = completion.choices[0].message if completion.choices else None
    calls = (message.tool_calls if message is not None else None) or []
    first = calls[0] if calls else None
    usage = completion.usage
    return ModelReply(
        model=completion.model or model,
        tool_name=first.function.name if first else None,
        tool_arguments=first.function.arguments if first else None,
        extra_tool_calls=max(len(calls) - 1, 0),
        content=message.content if message is not None else None,
        prompt_tokens=(usage.prompt_tokens if usage else None) or 0,
        completion_tokens=(usage.completion_tokens if usage else None) or 0,
        latency_ms=latency_ms,
    )
