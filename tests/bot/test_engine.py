"""The agent step in process: invalid output, model outages, step limits, commands, and what a model call records.

Real parts: the runtime from bot.wiring on a SQLite file, the worker loop, the real OpenAI client talking to the
scripted model server over a socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bot.config import load_settings
from bot.events import ActionProposed, ActionResult, Done, ErrorEvent, HumanInputRequested, Via
from bot.runtime import Loops
from bot.wiring import build_runtime
from storage import upgrade
from tests.bot.conftest import OpsgateFactory
from tests.support.deploy_ledger import deploy_ledger
from tests.support.model_server import (
    RecordedRequest,
    ScriptedModelServer,
    http_error,
    json_text,
    raw_arguments,
    slow,
    text,
    tool_call,
)

PROMPT = (Path(__file__).resolve().parents[2] / "agents" / "deploy" / "prompt.md").read_text(encoding="utf-8")
MODEL = "scripted-test-model"


def model_env(server: ScriptedModelServer, **extra: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test-key", "OPSGATE_MODEL": MODEL, **extra}


def user_content(request: RecordedRequest) -> str:
    return next(m["content"] for m in reversed(request.messages) if m["role"] == "user")


def staging(version: str = "1.4.2") -> Any:
    return tool_call("deploy", service="api", version=version, environment="staging")


async def test_three_invalid_outputs_ask_a_human_and_each_error_reaches_the_model(
    opsgate: OpsgateFactory, model_server: ScriptedModelServer
) -> None:
    """Bad JSON, an unknown tool, a schema violation: each is shown next step; after 3 a person is asked."""
    og = await opsgate(**model_env(model_server))
    model_server.script(
        raw_arguments("deploy", "{not json"),
        tool_call("launch_rockets", target="moon"),
        tool_call("deploy", service="api", version="1.4.2", environment="moon"),
    )
    thread_id = await og.start("deploy api 1.4.2 to the moon")
    thread = await og.wait(thread_id, "waiting_for_human")
    errors = [e for e in thread.events if isinstance(e, ErrorEvent)]
    assert [e.kind for e in errors] == ["invalid_output"] * 3
    assert "not valid JSON" in errors[0].message
    assert "unknown tool 'launch_rockets'" in errors[1].message
    assert errors[2].message.startswith("invalid arguments for deploy: environment")
    requests = model_server.requests
    assert len(requests) == 3
    assert errors[0].message in user_content(requests[1])
    assert errors[1].message in user_content(requests[2])
    question = thread.events[-1]
    assert isinstance(question, HumanInputRequested)
    assert "3 times" in question.message and "environment" in question.message
    assert not any(isinstance(e, ActionProposed) for e in thread.events)

    # The person answers; the model recovers, and errors it recovered from leave its context.
    model_server.script(staging(), tool_call("done_for_now", message="deployed to staging"))
    await og.runtime.service.add_message(thread_id, "staging then", user="bob@example.com", via=Via(channel="api"))
    thread = await og.wait(thread_id, "done")
    assert len(model_server.requests) == 5
    assert "launch_rockets" in user_content(model_server.requests[3])
    assert "launch_rockets" not in user_content(model_server.requests[4])


async def test_model_errors_are_retried_with_backoff_and_the_thread_completes(
    opsgate: OpsgateFactory, model_server: ScriptedModelServer
) -> None:
    """500 and 503 exhaust one call's retry (the worker backs off), 429 honours Retry-After; then it finishes."""
    model_server.script(
        http_error(500), http_error(503), http_error(429, retry_after=0.3),
        tool_call("done_for_now", message="nothing to do"),
    )
    og = await opsgate(**model_env(model_server, OPSGATE_MODEL_RETRIES="1"))
    thread_id = await og.start("anything running?")
    thread = await og.wait(thread_id, "done", timeout=15)
    times = [r.received_at for r in model_server.requests]
    assert len(times) == 4
    assert times[1] - times[0] >= 0.45  # the client's own backoff between attempts of one call
    assert times[2] - times[1] >= 1.9  # ModelUnavailable: the worker retries the thread later
    assert times[3] - times[2] >= 0.25  # Retry-After of the 429
    assert [e.type for e in thread.events] == ["user_message", "agent_selected", "action_proposed", "done"]
    assert await og.runtime.store.thread_attempts(thread_id) == 0


async def test_a_thread_survives_the_model_server_being_down(opsgate: OpsgateFactory) -> None:
    """With the model unreachable the thread stays runnable (no error, no loss); a later process finishes it."""
    server = ScriptedModelServer([tool_call("done_for_now", message="back online")])  # bound, not listening yet
    try:
        first = await opsgate(**model_env(server))
        thread_id = await first.start("what is deployed?")
        deadline = time.monotonic() + 10
        while await first.runtime.store.thread_attempts(thread_id) < 1:  # the worker gave up once, for now
            assert time.monotonic() < deadline, "the worker never retried the model call"
            await asyncio.sleep(0.05)
        thread = await first.thread(thread_id)
        assert thread.status == "running"
        assert [e.type for e in thread.events] == ["user_message", "agent_selected"]
        await first.stop()  # the process goes away while the model is still down

        server.start()
        second = await opsgate(**model_env(server))
        thread = await second.wait(thread_id, "done", timeout=15)
        assert thread.events[-1] == Done(id=thread.events[-1].id, at=thread.events[-1].at, message="back online")
        assert len(server.requests) == 1
        await second.stop()  # close the model client before the server stops
    finally:
        server.stop()


async def test_step_limit_fails_the_thread_and_a_new_message_continues(
    opsgate: OpsgateFactory, model_server: ScriptedModelServer
) -> None:
    """A model that keeps listing deployments is stopped after OPSGATE_MAX_STEPS with a step_limit error."""
    model_server.responder = lambda _: tool_call("list_deployments")
    og = await opsgate(**model_env(model_server, OPSGATE_MAX_STEPS="3"))
    thread_id = await og.start("what is deployed?")
    thread = await og.wait(thread_id, "failed")
    assert len(model_server.requests) == 3
    assert sum(isinstance(e, ActionResult) for e in thread.events) == 3
    last = thread.events[-1]
    assert isinstance(last, ErrorEvent) and last.kind == "step_limit"
    assert "OPSGATE_MAX_STEPS" in last.message and "3 steps" in last.message

    model_server.responder = lambda _: tool_call("done_for_now", message="api is not deployed anywhere")
    await og.runtime.service.add_message(thread_id, "so?", user="bob@example.com", via=Via(channel="api"))
    thread = await og.wait(thread_id, "done")
    assert len(model_server.requests) == 4


async def test_explicit_command_without_a_model_runs_the_action(opsgate: OpsgateFactory) -> None:
    """With no model configured, `!deploy ... environment=staging` still proposes, executes and records."""
    og = await opsgate()
    thread_id = await og.start("!deploy service=api version=1.2.3 environment=staging")
    thread = await og.wait(thread_id, "done")
    proposal = next(e for e in thread.events if isinstance(e, ActionProposed))
    assert (proposal.source, proposal.call, proposal.name) == ("command", None, "deploy")
    assert proposal.arguments == {"service": "api", "version": "1.2.3", "environment": "staging"}
    result = next(e for e in thread.events if isinstance(e, ActionResult))
    assert result.ok and "recorded deploy of api 1.2.3 to staging" in result.result
    reply = thread.events[-1]
    assert isinstance(reply, Done) and reply.message == result.result  # the result is the reply
    ledger = await deploy_ledger(og.runtime.store, "api")
    assert [(e.version, e.environment) for e in ledger] == [("1.2.3", "staging")]


async def test_explicit_command_makes_no_model_request(
    opsgate: OpsgateFactory, model_server: ScriptedModelServer
) -> None:
    """With a model configured, an explicit command still runs without asking the model anything."""
    model_server.responder = lambda _: tool_call("done_for_now", message="deployed")
    og = await opsgate(**model_env(model_server))
    thread_id = await og.start("!deploy service=api version=1.2.3 environment=staging")
    await og.wait(thread_id, "done")
    assert model_server.requests == []


async def test_free_text_without_a_model_explains_how_to_configure_one(opsgate: OpsgateFactory) -> None:
    """No OPENAI_* settings: a free-text request is answered with the no-model reply and the thread is done."""
    og = await opsgate()
    thread_id = await og.start("please deploy api 1.2.3 to staging")
    thread = await og.wait(thread_id, "done")
    assert [e.type for e in thread.events] == ["user_message", "agent_selected", "done"]
    reply = thread.events[-1]
    assert isinstance(reply, Done)
    assert reply.message.startswith("No language model is configured")
    assert "OPENAI_BASE_URL" in reply.message and "!deploy" in reply.message


async def test_every_model_call_records_model_prompt_hash_and_tokens(
    opsgate: OpsgateFactory, model_server: ScriptedModelServer
) -> None:
    """Errors and proposals from the model carry the model name, prompt hash and the server's token usage."""
    model_server.script(text("I would deploy it."), staging(), tool_call("done_for_now", message="done"))
    og = await opsgate(**model_env(model_server))
    thread_id = await og.start("deploy api 1.4.2 to staging")
    thread = await og.wait(thread_id, "done")
    calls = [e.call for e in thread.events if isinstance(e, ActionProposed | ErrorEvent) and e.call is not None]
    assert len(calls) == 3 == len(model_server.requests)
    prompt_hash = hashlib.sha256(PROMPT.encode()).hexdigest()[:16]
    for call, request in zip(calls, model_server.requests, strict=True):
        assert call.model == MODEL
        assert call.prompt_hash == prompt_hash
        assert call.prompt_tokens == max(1, len(request.body) // 4)  # what the server reported as usage
        assert call.completion_tokens > 0
        assert call.latency_ms >= 0


async def test_request_offers_every_action_as_a_required_tool_with_its_schema(
    opsgate: OpsgateFactory, model_server: ScriptedModelServer
) -> None:
    """Each request has tool_choice="required", the agent's prompt, and a JSON schema per action."""
    model_server.script(tool_call("done_for_now", message="hi"))
    og = await opsgate(**model_env(model_server))
    await og.wait(await og.start("hello"), "done")
    request = model_server.requests[0]
    body = request.json
    assert body["model"] == MODEL
    assert body["tool_choice"] == "required"
    assert request.headers["authorization"] == "Bearer test-key"
    assert body["messages"][0] == {"role": "system", "content": PROMPT.strip()}
    assert "<user_message" in body["messages"][1]["content"] and "hello" in body["messages"][1]["content"]
    assert request.tool_names == ["list_deployments", "deploy", "rollback", "request_more_information",
                                  "done_for_now"]
    tools = {t["function"]["name"]: t["function"] for t in body["tools"]}
    assert all(t["type"] == "function" for t in body["tools"])
    deploy = tools["deploy"]["parameters"]
    assert deploy["type"] == "object"
    assert set(deploy["properties"]) == {"service", "version", "environment", "reason"}
    assert deploy["properties"]["environment"]["enum"] == ["staging", "production"]
    assert deploy["properties"]["service"]["pattern"]
    assert sorted(deploy["required"]) == ["environment", "service", "version"]
    assert deploy["additionalProperties"] is False
    assert "Production" in tools["deploy"]["description"]
    done = tools["done_for_now"]["parameters"]
    assert set(done["properties"]) == {"message"} and done["required"] == ["message"]
    assert "reason" not in tools["request_more_information"]["parameters"]["properties"]


async def test_json_reply_in_content_is_accepted_end_to_end(
    opsgate: OpsgateFactory, model_server: ScriptedModelServer
) -> None:
    """A server that answers with a JSON object as text still drives the thread (the fallback parser)."""
    model_server.script(
        json_text({"name": "deploy", "arguments": {"service": "api", "version": "2.0.0", "environment": "staging",
                                                   "reason": "asked for"}}),
        text('```json\n{"name": "done_for_now", "arguments": {"message": "2.0.0 is on staging"}}\n```'),
    )
    og = await opsgate(**model_env(model_server))
    thread = await og.wait(await og.start("deploy api 2.0.0 to staging"), "done")
    proposal = next(e for e in thread.events if isinstance(e, ActionProposed))
    assert proposal.arguments["version"] == "2.0.0" and proposal.reason == "asked for"
    assert isinstance(thread.events[-1], Done) and thread.events[-1].message == "2.0.0 is on staging"


async def test_two_workers_never_run_the_same_step(
    database_url: str, model_server: ScriptedModelServer
) -> None:
    """Two processes' workers on one database (SQLite, PostgreSQL): each thread's model step runs once."""
    model_server.responder = lambda _: slow(0.05, tool_call("done_for_now", message="nothing to do"))
    await upgrade(database_url)
    settings = load_settings({"DATABASE_URL": database_url, "OPSGATE_POLL_INTERVAL": "0.02",
                              **model_env(model_server)})
    runtimes = [build_runtime(settings, channels=[]) for _ in range(2)]
    loops = [Loops(), Loops()]
    try:
        for runtime, loop in zip(runtimes, loops, strict=True):
            loop.start(runtime.loops())
        threads = await asyncio.gather(*(
            runtimes[n % 2].service.start_thread(f"question {n}", user="bob", via=Via(channel="api"))
            for n in range(30)
        ))
        deadline = time.monotonic() + 20
        for thread in threads:
            while (await runtimes[0].service.get_thread(thread.id)).status != "done":
                assert time.monotonic() < deadline, "threads did not finish"
                await asyncio.sleep(0.05)
    finally:
        for runtime, loop in zip(runtimes, loops, strict=True):
            await loop.stop()
            await runtime.aclose()
    assert len(model_server.requests) == 30
    asked = Counter(next(line for line in user_content(r).splitlines() if line.startswith("question"))
                    for r in model_server.requests)
    assert set(asked.values()) == {1}


async def test_a_model_call_that_times_out_is_retried(
    opsgate: OpsgateFactory, model_server: ScriptedModelServer
) -> None:
    """A reply slower than OPSGATE_MODEL_TIMEOUT is abandoned and the call retried; the thread completes."""
    model_server.script(slow(3, tool_call("done_for_now", message="too late")),
                        tool_call("done_for_now", message="in time"))
    og = await opsgate(**model_env(model_server, OPSGATE_MODEL_TIMEOUT="0.3"))
    thread = await og.wait(await og.start("anything?"), "done")
    assert len(model_server.requests) == 2
    assert isinstance(thread.events[-1], Done) and thread.events[-1].message == "in time"


async def test_a_model_that_refuses_the_request_is_reported_on_the_thread(opsgate: OpsgateFactory) -> None:
    """A 401 from the model is not an outage: the thread stops and shows the refusal instead of spinning."""
    with ScriptedModelServer(api_key="the-right-key") as server:
        og = await opsgate(**model_env(server))  # sends "test-key"
        try:
            thread_id = await og.start("what is deployed?")
            thread = await og.wait(thread_id, "failed", "waiting_for_human", timeout=1.5)
        finally:
            await og.stop()  # close the model client before the server stops
    errors = [e for e in thread.events if isinstance(e, ErrorEvent)]
    assert errors and "401" in errors[-1].message


async def test_a_refused_click_during_the_model_call_does_not_cost_a_second_call(
    opsgate: OpsgateFactory, model_server: ScriptedModelServer
) -> None:
    """A refusal recorded while the model thinks makes the worker's append lose, but changes nothing the model
    saw: the same answer is appended on top, the model is asked once, and the thread finishes."""
    og = await opsgate(**model_env(model_server))
    model_server.script(slow(1.0, tool_call("done_for_now", message="nothing to deploy")))
    thread_id = await og.start("is anything broken?")
    for _ in range(500):  # until the worker waits for the slow answer
        if model_server.requests:
            break
        await asyncio.sleep(0.02)
    await og.runtime.service.record_refusal(thread_id, None, "mallory@example.com", "not an approver",
                                            Via(channel="api"))
    thread = await og.wait(thread_id, "done")
    assert len(model_server.requests) == 1
    assert [e.type for e in thread.events][-3:] == ["decision_refused", "action_proposed", "done"]
