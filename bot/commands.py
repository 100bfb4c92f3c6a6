"""Explicit commands: ``!deploy service=api version=1.2.3 environment=production`` without a model.

The first line of a message is the command; later lines are ignored (an email signature, a quoted reply).
Arguments are ``key=value`` words, values optionally quoted ('single' or "double" with \\" and \\\\ escapes).
Values stay strings and are never evaluated: the action's pydantic model validates and coerces them, so the
parsed action goes through the same policy and execution path as one a model proposed. Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from bot.actions import Action, action_schema
from bot.agent import Agent, Registry
from bot.approvals import describe_validation
from bot.errors import CommandSyntaxError

PREFIX = "!"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A command is a name and a few key=value words; a longer first line is a mistake (or an attack), refused at once.
MAX_COMMAND_CHARS = 10_000
_QUOTES = "\"'"


@dataclass(frozen=True)
class ParsedCommand:
    """A command's name (lower case, without ``!``) and its raw ``key=value`` arguments."""

    name: str
    arguments: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Proposal:
    """A validated action to propose in the thread, owned by ``agent``."""

    action: Action
    agent: Agent
    reason: str | None = None


@dataclass(frozen=True)
class Reply:
    """A plain-text answer to the person instead of an action (help, or what is wrong with the command)."""

    message: str


# --- parsing ------------------------------------------------------------------------------------------------


def is_command(text: str) -> bool:
    """Whether the first word of the message starts with ``!``."""
    return text.lstrip().startswith(PREFIX)


@dataclass
class _Word:
    text: str = ""
    equals: int | None = None  # index of the first '=' outside quotes


# One alternative for every character, so the pieces cover the line: whitespace, a closed "double" quote (with \"
# and \\ escapes), a closed 'single' quote, an unclosed quote, a run of anything else. No alternative can overlap
# another, so the scan is linear whatever the input (a megabyte of quotes and backslashes included).
_PIECES = re.compile(
    r"""(?P<space>\s+)"""
    r"""|"(?P<double>(?:[^"\\]|\\[\s\S])*)["]"""
    r"""|'(?P<single>[^']*)'"""
    r"""|(?P<open>["'])"""
    r"""|(?P<bare>[^\s"']+)"""
)
_ESCAPE = re.compile(r'\\(["\\])')
_SHOWN = 60  # characters of a word quoted in an error message


def _shown(text: str) -> str:
    """A word for an error message: quoted, and cut short when long."""
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "…")


def _words(line: str, offset: int = 0) -> Iterator[_Word]:
    """Split a line into words on unquoted whitespace, removing quotes; '=' inside quotes is data.

    Words come one at a time, so a caller stops at the first bad one. ``offset`` is the column of ``line[0]`` in
    the message, for error messages.
    """
    parts: list[str] = []  # pieces of the current word
    size = 0  # characters in ``parts``
    equals: int | None = None
    started = False
    for match in _PIECES.finditer(line):
        kind = match.lastgroup
        if kind == "space":
            if started:
                yield _Word("".join(parts), equals)
                parts, size, equals, started = [], 0, None, False
            continue
        if kind == "open":
            char = match.group()
            example = f"note={char}two words{char}"
            raise CommandSyntaxError(
                f"unbalanced {char} quote at column {offset + match.start() + 1}: close it, e.g. {example}"
            )
        started = True
        if kind == "double":
            piece = _ESCAPE.sub(r"\1", match.group("double"))
        elif kind == "single":
            piece = match.group("single")
        else:
            piece = match.group("bare")
            if equals is None and "=" in piece:
                equals = size + piece.index("=")
        parts.append(piece)
        size += len(piece)
    if started:
        yield _Word("".join(parts), equals)


def parse_command(text: str) -> ParsedCommand:
    """Parse the first line of ``text`` as ``!name key=value ...``; CommandSyntaxError says what is wrong."""
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not line.startswith(PREFIX):
        raise CommandSyntaxError(f"a command starts with {PREFIX}, e.g. {PREFIX}help")
    if len(line) > MAX_COMMAND_CHARS:
        raise CommandSyntaxError(
            f"the command line is {len(line)} characters long; a command has at most {MAX_COMMAND_CHARS}"
        )
    words = _words(line[len(PREFIX):], offset=len(PREFIX))
    head = next(words, None)
    if head is None or line[len(PREFIX):][:1].isspace():
        raise CommandSyntaxError(f"empty command name: write it right after {PREFIX}, e.g. {PREFIX}help")
    name = head.text.lower()
    if head.equals is not None or not _NAME.match(name):
        raise CommandSyntaxError(
            f"bad command name {_shown(head.text)}: use letters, digits and _, e.g. {PREFIX}help"
        )
    arguments: dict[str, str] = {}
    for word in words:
        if word.equals is None:
            shown = _shown(word.text)
            raise CommandSyntaxError(f"{shown} is not key=value; write e.g. service={shown[1:-1]}")
        key, value = word.text[: word.equals], word.text[word.equals + 1:]
        if not key:
            raise CommandSyntaxError(f"empty argument name in {_shown(word.text)}: write key=value")
        if not _NAME.match(key):
            raise CommandSyntaxError(f"bad argument name {_shown(key)}: use letters, digits and _")
        if key in arguments:
            raise CommandSyntaxError(f"argument {_shown(key)} is given twice")
        arguments[key] = value
    return ParsedCommand(name, arguments)


# --- describing actions -------------------------------------------------------------------------------------


def _type_of(prop: dict[str, Any]) -> str:
    """A short type for usage lines: ``staging|production``, ``string``, ``integer``."""
    if "enum" in prop:
        return "|".join(str(v) for v in prop["enum"])
    if "const" in prop:
        return str(prop["const"])
    if "anyOf" in prop:
        kinds = [_type_of(p) for p in prop["anyOf"] if p.get("type") != "null"]
        return "|".join(kinds) or "null"
    if "$ref" in prop:
        return "object"
    return str(prop.get("type", "value"))


def usage(action: type[Action]) -> str:
    """``!deploy service=<string> version=<string> environment=<staging|production> [note=<string>]``."""
    params = action_schema(action).parameters
    required = set(params.get("required", []))
    parts = [f"{PREFIX}{action.name}"]
    for key, prop in params.get("properties", {}).items():
        word = f"{key}=<{_type_of(prop)}>"
        parts.append(word if key in required else f"[{word}]")
    return " ".join(parts)


def describe_action(action: type[Action]) -> str:
    """Usage line, description, approval policy, and one line per argument."""
    schema = action_schema(action)
    policy = action.approval
    approval = f"approval: {schema.approval}" + (f" (group {policy.group})" if policy.group else "")
    lines = [f"  {usage(action)}", f"      {schema.description}", f"      {approval}"]
    required = set(schema.parameters.get("required", []))
    for key, prop in schema.parameters.get("properties", {}).items():
        need = "required" if key in required else "optional"
        default = f", default {prop['default']!r}" if prop.get("default") is not None else ""
        note = f": {prop['description']}" if prop.get("description") else ""
        lines.append(f"      - {key} ({_type_of(prop)}, {need}{default}){note}")
    return "\n".join(lines)


def help_text(registry: Registry, only: type[Action] | None = None) -> str:
    """What ``!help`` answers: every agent with its commands, arguments and approval policies."""
    if only is not None:
        return describe_action(only)
    blocks = [
        f"Commands run without a model. Write {PREFIX}<action> key=value ... "
        f"(quote values with spaces: note=\"two words\"); {PREFIX}help <action> shows one action."
    ]
    for agent in registry:
        actions = "\n".join(describe_action(a) for a in agent.tools) or "  (no actions)"
        blocks.append(f"Agent {agent.name}: {agent.description}\n{actions}")
    return "\n\n".join(blocks)


def _command_names(actions: list[type[Action]]) -> str:
    return ", ".join(f"{PREFIX}{a.name}" for a in actions) or "none"


def _all_actions(registry: Registry) -> list[type[Action]]:
    seen: dict[str, type[Action]] = {}
    for agent in registry:
        for action in agent.tools:
            seen.setdefault(action.name, action)
    return list(seen.values())


# --- interpreting -------------------------------------------------------------------------------------------


def _find(name: str, agent: Agent | None, registry: Registry) -> tuple[type[Action], Agent] | Reply:
    """The action called ``name`` and its agent, or a Reply naming the commands that exist."""
    if agent is not None:
        action = next((a for a in agent.tools if a.name == name), None)
        if action is not None:
            return action, agent
        elsewhere = [a.name for a in registry.agents_with_action(name) if a.name != agent.name]
        if elsewhere:
            here = _command_names(list(agent.tools))
            return Reply(
                f"{PREFIX}{name} belongs to agent {', '.join(elsewhere)}, but this thread is with agent "
                f"{agent.name}; start a new request for it. Commands here: {here}, {PREFIX}help"
            )
        return Reply(
            f"unknown command {PREFIX}{name}. Commands of agent {agent.name}: "
            f"{_command_names(list(agent.tools))}, {PREFIX}help"
        )
    owners = registry.agents_with_action(name)
    if len(owners) == 1:
        owner = owners[0]
        return next(a for a in owner.tools if a.name == name), owner
    if owners:
        return Reply(
            f"{PREFIX}{name} exists in several agents ({', '.join(a.name for a in owners)}); "
            "start the request with one of them chosen"
        )
    return Reply(f"unknown command {PREFIX}{name}. Known commands: {_command_names(_all_actions(registry))}, "
                 f"{PREFIX}help")


def interpret(text: str, agent: Agent | None, registry: Registry) -> Proposal | Reply:
    """Turn a ``!command`` into a validated action of the thread's agent, or a Reply saying what is wrong."""
    first = text.strip().split(maxsplit=1)[:1]
    if first and first[0].lower() == f"{PREFIX}help":
        return _help(text, agent, registry)
    try:
        command = parse_command(text)
    except CommandSyntaxError as exc:
        return Reply(f"could not read the command: {exc}. {PREFIX}help lists the commands.")
    found = _find(command.name, agent, registry)
    if isinstance(found, Reply):
        return found
    action_type, owner = found
    arguments: dict[str, Any] = dict(command.arguments)
    reason = None
    if "reason" not in action_type.model_fields:
        reason = arguments.pop("reason", None) or None
    try:
        action = action_type.model_validate(arguments)
    except ValidationError as exc:
        return Reply(f"{PREFIX}{command.name}: {describe_validation(exc)}\nusage: {usage(action_type)}")
    return Proposal(action, owner, reason)


def _help(text: str, agent: Agent | None, registry: Registry) -> Reply:
    """``!help`` or ``!help <action>``: the words after help are topics, not key=value arguments."""
    topic = text.strip().splitlines()[0].split()[1:2]
    if not topic:
        return Reply(help_text(registry))
    name = topic[0].lstrip(PREFIX).lower()
    found = _find(name, agent, registry)
    if isinstance(found, Reply):
        return found
    return Reply(help_text(registry, only=found[0]))


def no_model_reply(registry: Registry) -> str:
    """The answer to free text when no model is configured: how to configure one, and what works now."""
    examples = "\n".join(f"  {usage(a)}" for a in _all_actions(registry))
    return (
        "No language model is configured, so I can only run explicit commands.\n"
        "To talk in free text, set OPENAI_API_KEY (OpenAI), or OPENAI_BASE_URL for any OpenAI-compatible "
        "server such as Ollama (http://127.0.0.1:11434/v1) or llama.cpp started with --port 8081 "
        "(http://127.0.0.1:8081/v1; opsgate itself uses 8080), "
        "and choose the model with OPSGATE_MODEL; then restart opsgate.\n"
        f"Commands you can use now:\n{examples}\n  {PREFIX}help  (every action with its arguments)"
    )
