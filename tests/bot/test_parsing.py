"""Validating the model's reply into one typed action, or a compact error the model sees next step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agents.deploy import AGENT
from agents.deploy.actions import Deploy, ListDeployments
from bot.actions import Action, DoneForNow, RequestMoreInformation
from bot.agent import Agent, ToolContext
from bot.llm import ModelReply
from bot.parsing import Invalid, Parsed, parse_reply

PROD = {"service": "api", "version": "1.4.2", "environment": "production"}


def call(name: str, arguments: Any) -> ModelReply:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ModelReply(model="m", tool_name=name, tool_arguments=raw)


def content(text: str) -> ModelReply:
    return ModelReply(model="m", content=text)


def invalid(reply: ModelReply) -> str:
    parsed = parse_reply(reply, AGENT)
    assert isinstance(parsed, Invalid), parsed
    return parsed.message


def test_tool_call_becomes_the_typed_action() -> None:
    """A known tool with valid arguments is the action, validated by its pydantic model."""
    parsed = parse_reply(call("deploy", PROD), AGENT)
    assert parsed == Parsed(Deploy(**PROD), None)  # type: ignore[arg-type]
    listed = parse_reply(call("list_deployments", {}), AGENT)
    assert isinstance(listed, Parsed) and listed.action == ListDeployments()


def test_universal_intents_are_tools_of_every_agent() -> None:
    """request_more_information and done_for_now parse for the deploy agent."""
    ask = parse_reply(call("request_more_information", {"message": "which version?"}), AGENT)
    done = parse_reply(call("done_for_now", {"message": "bye"}), AGENT)
    assert isinstance(ask, Parsed) and ask.action == RequestMoreInformation(message="which version?")
    assert isinstance(done, Parsed) and done.action == DoneForNow(message="bye")


def test_reason_is_taken_out_and_kept() -> None:
    """The optional reason is not an argument of the action; it is kept for the approver."""
    parsed = parse_reply(call("deploy", {**PROD, "reason": "security fix"}), AGENT)
    assert isinstance(parsed, Parsed)
    assert parsed.reason == "security fix"
    assert parsed.action.model_dump() == PROD


@pytest.mark.parametrize("reason", ["", "   ", 42, None])
def test_blank_or_non_text_reason_is_dropped(reason: Any) -> None:
    """A reason that is empty or not a string becomes None and never breaks validation."""
    parsed = parse_reply(call("deploy", {**PROD, "reason": reason}), AGENT)
    assert isinstance(parsed, Parsed) and parsed.reason is None


def test_tool_call_wins_over_content() -> None:
    """When the reply has a tool call and some text, the tool call is used."""
    reply = ModelReply(model="m", tool_name="list_deployments", tool_arguments="{}", content='{"name": "deploy"}')
    parsed = parse_reply(reply, AGENT)
    assert isinstance(parsed, Parsed) and parsed.action == ListDeployments()


def test_missing_tool_arguments_mean_no_arguments() -> None:
    """A call without an arguments string is validated as an empty object."""
    reply = ModelReply(model="m", tool_name="list_deployments", tool_arguments=None)
    assert parse_reply(reply, AGENT) == Parsed(ListDeployments(), None)


# --- JSON in the content: servers that return the call as text -----------------------------------------


@pytest.mark.parametrize("text", [
    json.dumps({"name": "deploy", "arguments": PROD}),
    json.dumps({"tool": "deploy", "parameters": PROD}),
    json.dumps({"function": "deploy", "arguments": json.dumps(PROD)}),
    json.dumps({"name": "deploy", **PROD}),
    "```json\n" + json.dumps({"name": "deploy", "arguments": PROD}, indent=2) + "\n```",
    "```\n" + json.dumps({"action": "deploy", "args": PROD}) + "\n```",
    "Sure, here is the call:\n```json\n" + json.dumps({"name": "deploy", "arguments": PROD}) + "\n```\nDone.",
])
def test_json_object_in_content_is_accepted(text: str) -> None:
    """A JSON object naming the tool, plain or fenced, is parsed like a tool call."""
    parsed = parse_reply(content(text), AGENT)
    assert parsed == Parsed(Deploy(**PROD), None)  # type: ignore[arg-type]


def test_reason_in_content_json_is_kept() -> None:
    """The reason is taken out of content-JSON arguments too."""
    parsed = parse_reply(content(json.dumps({"name": "deploy", "arguments": {**PROD, "reason": "hotfix"}})), AGENT)
    assert isinstance(parsed, Parsed) and parsed.reason == "hotfix"


@pytest.mark.parametrize("text", [
    "I will deploy api 1.4.2 to production now.",
    '{"name": "deploy", "arguments": {"service": "api",',
    '["deploy", {"service": "api"}]',
    '{"service": "api", "version": "1.4.2"}',
])
def test_content_without_a_tool_call_is_invalid(text: str) -> None:
    """Prose, broken JSON, a list, or an object naming no tool: the model is told to call one tool."""
    message = invalid(content(text))
    assert "call exactly one tool" in message
    assert "deploy" in message and "done_for_now" in message


def test_empty_reply_is_invalid() -> None:
    """A reply with neither a tool call nor content is an error."""
    assert invalid(ModelReply(model="m")).startswith("empty reply")


# --- errors the model can act on ----------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["not json", "{'service': 'api'}", '{"service": "api"'])
def test_bad_json_arguments_are_invalid(raw: str) -> None:
    """Arguments that are not JSON say so and name the tool."""
    message = invalid(call("deploy", raw))
    assert message.startswith("arguments for deploy are not valid JSON")


def test_non_object_arguments_are_invalid() -> None:
    """Arguments must be a JSON object."""
    assert invalid(call("deploy", "[1, 2]")) == "arguments for deploy must be a JSON object"
    assert "JSON object" in invalid(content(json.dumps({"name": "deploy", "arguments": "oops"})))


def test_unknown_tool_is_invalid_and_names_the_known_ones() -> None:
    """An unknown tool name lists every tool the model may call."""
    message = invalid(call("launch_rockets", {}))
    assert message == ("unknown tool 'launch_rockets'; call one of: list_deployments, deploy, rollback, "
                       "request_more_information, done_for_now")
    assert "unknown tool 'restart'" in invalid(content(json.dumps({"name": "restart", "arguments": {}})))


def test_schema_violation_names_the_field() -> None:
    """A value outside the schema names the field and what is allowed."""
    message = invalid(call("deploy", {**PROD, "environment": "moon"}))
    assert message.startswith("invalid arguments for deploy: environment:")
    assert "staging" in message and "production" in message
    assert "service" in invalid(call("deploy", {**PROD, "service": "api; rm -rf /"}))


def test_extra_field_is_named_as_unknown_argument() -> None:
    """An argument the action does not have is refused by name."""
    assert invalid(call("deploy", {**PROD, "force": True})) == "invalid arguments for deploy: force: unknown argument"


def test_missing_field_is_named() -> None:
    """A required argument that is missing is named."""
    message = invalid(call("deploy", {"service": "api", "environment": "staging"}))
    assert message == "invalid arguments for deploy: version: field required"


def test_several_problems_are_all_listed() -> None:
    """Every problem is reported at once, separated by semicolons."""
    message = invalid(call("deploy", {"environment": "moon", "extra": 1}))
    for part in ("service: field required", "version: field required", "environment:", "extra: unknown argument"):
        assert part in message
    assert message.count(";") == 3


class Silence(Action):
    """Mute a noisy alert; the reason is part of the action itself."""

    name: ClassVar[str] = "silence"
    alert: str
    reason: str


async def _silence(action: Action, ctx: ToolContext) -> str:
    return "silenced"


SILENCER = Agent(name="alerts", description="silences alerts", prompt_path=Path("unused.md"),
                 tools={Silence: _silence})


def test_an_action_with_its_own_reason_field_keeps_it() -> None:
    """When the action declares ``reason`` itself, it is an argument, not the approver note."""
    parsed = parse_reply(call("silence", {"alert": "disk-full", "reason": "known issue"}), SILENCER)
    assert isinstance(parsed, Parsed)
    assert parsed.action == Silence(alert="disk-full", reason="known issue")
