"""OpenAIChatModel against a real Chat Completions server on a socket: what it sends, what it reads, and how each
kind of failure ends (retried, refused, unavailable)."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bot.actions import ActionSchema
from bot.config import load_settings
from bot.errors import ModelRefused, ModelUnavailable
from bot.llm import ModelOptions, OpenAIChatModel
from tests.support.model_server import ScriptedModelServer, http_error, slow, text, tool_call, tool_calls

TOOLS = (
    ActionSchema(name="deploy", description="Deploy a service.", parameters={
        "type": "object", "properties": {"service": {"type": "string"}}, "required": ["service"]}),
    ActionSchema(name="done_for_now", description="Answer the person.", parameters={
        "type": "object", "properties": {"message": {"type": "string"}}}),
)
MESSAGES = [{"role": "system", "content": "You deploy."}, {"role": "user", "content": "deploy api"}]


@asynccontextmanager
async def _model(base_url: str, retries: int = 1, **env: str) -> AsyncIterator[OpenAIChatModel]:
    model = OpenAIChatModel(load_settings({"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-test",
                                           "OPSGATE_MODEL": "gpt-test", "OPSGATE_MODEL_RETRIES": str(retries),
                                           **env}))
    try:
        yield model
    finally:
        await model.aclose()


@pytest.fixture
async def keyed_server() -> AsyncIterator[ScriptedModelServer]:
    with ScriptedModelServer(api_key="sk-test") as server:
        yield server


async def test_one_tool_call_is_read_with_its_usage(keyed_server: ScriptedModelServer) -> None:
    keyed_server.script(tool_call("deploy", service="api", reason="asked"))
    async with _model(keyed_server.base_url + "/") as model:  # a trailing slash in the setting is fine
        reply = await model.complete(MESSAGES, TOOLS)
    assert reply.tool_name == "deploy"
    assert reply.tool_arguments == '{"service": "api", "reason": "asked"}'
    assert reply.model == "gpt-test" and reply.extra_tool_calls == 0 and reply.content is None
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0
    [request] = keyed_server.requests
    assert request.json["model"] == "gpt-test" and request.json["messages"] == MESSAGES
    assert request.json["tool_choice"] == "required"
    assert request.tool_names == ["deploy", "done_for_now"]
    deploy = request.json["tools"][0]["function"]["parameters"]
    assert "reason" in deploy["properties"] and deploy["required"] == ["service"]
    assert "temperature" not in request.json and "max_tokens" not in request.json
    assert request.headers["user-agent"].startswith("opsgate/")
    assert request.headers["content-type"] == "application/json"


async def test_options_are_sent_and_extra_calls_counted(model_server: ScriptedModelServer) -> None:
    model_server.script(tool_calls(tool_call("deploy", service="api"), tool_call("deploy", service="web"),
                                   content="two at once"))
    async with _model(model_server.base_url) as model:
        reply = await model.complete(MESSAGES, TOOLS, ModelOptions(temperature=0.2, max_tokens=300, timeout=5))
    assert (reply.tool_name, reply.extra_tool_calls, reply.content) == ("deploy", 1, "two at once")
    assert model_server.requests[0].json["temperature"] == 0.2
    assert model_server.requests[0].json["max_tokens"] == 300


async def test_plain_text_answer_has_no_tool(model_server: ScriptedModelServer) -> None:
    model_server.script(text("hello"))
    async with _model(model_server.base_url) as model:
        reply = await model.complete(MESSAGES, TOOLS)
    assert (reply.tool_name, reply.tool_arguments, reply.content) == (None, None, "hello")


async def test_arguments_sent_as_an_object_are_read_as_their_json(model_server: ScriptedModelServer) -> None:
    completion = {"id": "x", "object": "chat.completion", "model": "local", "choices": [{"index": 0, "message": {
        "role": "assistant", "tool_calls": [{"type": "function", "function": {
            "name": "deploy", "arguments": {"service": "api"}}}]}}]}
    model_server.script(http_error(200, body=completion))
    async with _model(model_server.base_url) as model:
        reply = await model.complete(MESSAGES, TOOLS)
    assert (reply.model, reply.tool_name, reply.tool_arguments) == ("local", "deploy", '{"service": "api"}')
    assert (reply.prompt_tokens, reply.completion_tokens) == (0, 0)  # no usage in the answer


async def test_429_waits_retry_after_and_5xx_backs_off(model_server: ScriptedModelServer) -> None:
    model_server.script(http_error(429, retry_after=1.2), http_error(503), tool_call("deploy", service="api"))
    async with _model(model_server.base_url, retries=2) as model:
        reply = await model.complete(MESSAGES, TOOLS)
    assert reply.tool_name == "deploy"
    times = [r.received_at for r in model_server.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 1.2  # the server's Retry-After, longer than our first backoff (0.5-0.75 s)
    assert 1.0 <= times[2] - times[1] < 5  # then our own backoff, doubled after the first attempt


async def test_exhausted_retries_say_what_the_server_said(model_server: ScriptedModelServer) -> None:
    model_server.script(http_error(500, body="overloaded, try later"), http_error(502, body="still overloaded"))
    async with _model(model_server.base_url, retries=1) as model:
        with pytest.raises(ModelUnavailable, match=r"HTTP 502: still overloaded"):
            await model.complete(MESSAGES, TOOLS)
    assert len(model_server.requests) == 2


async def test_4xx_is_refused_at_once_with_the_servers_message(keyed_server: ScriptedModelServer) -> None:
    keyed_server.script(tool_call("deploy", service="api"))
    async with _model(keyed_server.base_url, retries=3, OPENAI_API_KEY="sk-wrong") as model:
        with pytest.raises(ModelRefused, match=r"^the model server refused the request: HTTP 401: Incorrect API key"):
            await model.complete(MESSAGES, TOOLS)
    assert keyed_server.remaining == 1  # never answered, never retried


async def test_a_redirect_is_not_followed(model_server: ScriptedModelServer) -> None:
    """A POST redirected elsewhere (a proxy's login page, a moved endpoint) is reported, never re-sent as a GET."""
    model_server.script(http_error(302, body="moved"), tool_call("deploy", service="api"))
    async with _model(model_server.base_url, retries=3) as model:
        with pytest.raises(ModelRefused, match=r"HTTP 302: moved"):
            await model.complete(MESSAGES, TOOLS)
    assert len(model_server.requests) == 1


async def test_an_html_error_page_is_quoted_briefly(model_server: ScriptedModelServer) -> None:
    model_server.script(http_error(404, body=b"<html><body>" + b"x" * 5000 + b"</body></html>"))
    async with _model(model_server.base_url) as model:
        with pytest.raises(ModelRefused) as caught:
            await model.complete(MESSAGES, TOOLS)
    assert "HTTP 404: <html><body>xxx" in str(caught.value) and len(str(caught.value)) < 300


@pytest.mark.parametrize("body", [
    b"<html>not json</html>",
    {"object": "chat.completion"},  # no choices
    {"choices": [{"message": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]},  # a call without a name
    {"choices": [{"message": {"content": ["not", "text"]}}]},
])
async def test_an_answer_that_is_not_a_chat_completion_is_unavailable(
    model_server: ScriptedModelServer, body: object
) -> None:
    model_server.script(http_error(200, body=body))
    async with _model(model_server.base_url, retries=3) as model:
        with pytest.raises(ModelUnavailable, match=r"^model server error: the answer is not a chat completion"):
            await model.complete(MESSAGES, TOOLS)
    assert len(model_server.requests) == 1  # a broken answer is not retried here; the worker retries the thread


async def test_a_slow_answer_times_out_and_is_retried(model_server: ScriptedModelServer) -> None:
    model_server.script(slow(3, tool_call("deploy", service="late")), tool_call("deploy", service="api"))
    started = time.monotonic()
    async with _model(model_server.base_url, retries=1) as model:
        reply = await model.complete(MESSAGES, TOOLS, ModelOptions(timeout=0.3))
    assert reply.tool_arguments == '{"service": "api"}'
    assert time.monotonic() - started < 2.5


async def test_no_server_is_unavailable_after_the_retries() -> None:
    async with _model(f"http://127.0.0.1:{_closed_port()}/v1", retries=1) as model:
        with pytest.raises(ModelUnavailable, match=r"^model server unavailable: \w*Connect\w*Error"):
            await model.complete(MESSAGES, TOOLS)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_environments_proxy_is_used_unless_no_proxy_names_the_host(
    model_server: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    model_server.script(tool_call("deploy", service="api"))
    async with _model(model_server.base_url, retries=0) as through_proxy:
        with pytest.raises(ModelUnavailable, match=r"Connect\w*Error"):  # the dead proxy, not the live server
            await through_proxy.complete(MESSAGES, TOOLS)
    assert model_server.requests == []
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with _model(model_server.base_url, retries=0) as direct:
        assert (await direct.complete(MESSAGES, TOOLS)).tool_name == "deploy"
