"""The scripted model server speaks the Chat Completions protocol the real openai client expects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.support.model_server import (
    ScriptedModelServer,
    http_error,
    json_text,
    raw_arguments,
    slow,
    text,
    tool_call,
    tool_calls,
)

TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "deploy", "parameters": {"type": "object", "properties": {}}}},
]


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(api_key="sk-test") as server:
        yield server


def client(server: ScriptedModelServer, **kwargs: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0, **kwargs)  # type: ignore[arg-type]


async def ask(server: ScriptedModelServer, content: str = "deploy api") -> object:
    async with client(server) as c:
        return await c.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": content}], tools=TOOLS,
        )


async def test_tool_call_parses_with_openai_client(server: ScriptedModelServer) -> None:
    """A scripted tool call arrives through AsyncOpenAI with JSON arguments, finish_reason and usage."""
    server.script(tool_call("deploy", reason="user asked", service="api", version="1.2.3"))
    response = await ask(server)
    choice = response.choices[0]  # type: ignore[attr-defined]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "deploy"
    arguments = json.loads(call.function.arguments)
    assert arguments == {"service": "api", "version": "1.2.3", "reason": "user asked"}
    assert response.model == "gpt-test"  # type: ignore[attr-defined]
    usage = response.usage  # type: ignore[attr-defined]
    assert usage.prompt_tokens > 0 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_text_json_text_and_raw_arguments(server: ScriptedModelServer) -> None:
    """Plain text, JSON-in-content and non-JSON arguments are delivered verbatim, in script order."""
    server.script(text("hello"), json_text({"intent": "help"}), raw_arguments("deploy", "not json"))
    first, second, third = [await ask(server) for _ in range(3)]
    assert first.choices[0].message.content == "hello"  # type: ignore[attr-defined]
    assert first.choices[0].finish_reason == "stop"  # type: ignore[attr-defined]
    assert first.choices[0].message.tool_calls is None  # type: ignore[attr-defined]
    assert json.loads(second.choices[0].message.content) == {"intent": "help"}  # type: ignore[attr-defined]
    assert third.choices[0].message.tool_calls[0].function.arguments == "not json"  # type: ignore[attr-defined]
    assert server.remaining == 0


async def test_parallel_tool_calls(server: ScriptedModelServer) -> None:
    """tool_calls() puts several calls in one assistant message."""
    server.script(tool_calls(tool_call("a"), tool_call("b", x=1)))
    response = await ask(server)
    names = [c.function.name for c in response.choices[0].message.tool_calls]  # type: ignore[attr-defined]
    assert names == ["a", "b"]


async def test_script_exhausted_is_a_500_error(server: ScriptedModelServer) -> None:
    """With nothing scripted the server answers 500 'script exhausted' and records the failure."""
    with pytest.raises(openai.InternalServerError, match="script exhausted"):
        await ask(server)
    assert server.failures and "script exhausted" in server.failures[0]


async def test_http_error_with_retry_after(server: ScriptedModelServer) -> None:
    """http_error(429, retry_after=) reaches the client as RateLimitError with the Retry-After header."""
    server.script(http_error(429, retry_after=7), http_error(503, body="overloaded"))
    with pytest.raises(openai.RateLimitError) as caught:
        await ask(server)
    assert caught.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.InternalServerError, match="overloaded"):
        await ask(server)


async def test_raw_bytes_error_body(server: ScriptedModelServer) -> None:
    """A bytes body is sent verbatim (like an HTML page from a proxy)."""
    server.script(http_error(502, body=b"<html>bad gateway</html>"))
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.base_url}/chat/completions", json={"messages": []},
                                   headers={"Authorization": "Bearer sk-test"})
    assert response.status_code == 502 and response.text == "<html>bad gateway</html>"


async def test_slow_reply_times_out_the_client(server: ScriptedModelServer) -> None:
    """slow() delays the reply, so a client timeout fires."""
    server.script(slow(2.0, text("late")))
    async with client(server, timeout=0.3) as c:
        with pytest.raises(openai.APITimeoutError):
            await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


async def test_responder_used_when_script_empty(server: ScriptedModelServer) -> None:
    """The responder answers once the script is used up, seeing the request JSON."""
    server.responder = lambda request: text(f"echo {request['messages'][-1]['content']}")
    server.script(text("scripted"))
    first, second = await ask(server, "one"), await ask(server, "two")
    assert first.choices[0].message.content == "scripted"  # type: ignore[attr-defined]
    assert second.choices[0].message.content == "echo two"  # type: ignore[attr-defined]


async def test_records_requests_and_headers(server: ScriptedModelServer) -> None:
    """Every request is recorded with its Authorization header; helpers expose the text the model saw."""
    server.script(text("a"), text("b"))
    await ask(server, "first message")
    async with client(server) as c:
        await c.chat.completions.create(model="m", messages=[
            {"role": "user", "content": "first message"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "deploy", "arguments": "{\"v\": 1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "rejected: not on a Friday"},
            {"role": "user", "content": [{"type": "text", "text": "why?"}]},
        ])
    requests = await server.wait_for_requests(2, timeout=1)
    assert requests[0].headers["authorization"] == "Bearer sk-test"
    assert requests[0].tool_names == ["deploy"]
    assert server.last_user_content() == "why?"
    assert "not on a Friday" in server.all_text() and '{"v": 1}' in server.all_text()


async def test_wrong_api_key_is_401(server: ScriptedModelServer) -> None:
    """With api_key set, another bearer token is refused like the real API."""
    async with openai.AsyncOpenAI(api_key="wrong", base_url=server.base_url, max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError):
            await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert server.requests == []


async def test_models_endpoint_and_wait_timeout(server: ScriptedModelServer) -> None:
    """GET /v1/models lists the model; wait_for_requests times out when nothing arrives."""
    async with client(server) as c:
        models = await c.models.list()
    assert [m.id for m in models.data] == ["scripted-model"]
    with pytest.raises(TimeoutError):
        await server.wait_for_requests(1, timeout=0.1)
