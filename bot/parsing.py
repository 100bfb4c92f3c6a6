"""Validating what the model returned into one typed action, or a compact error it will see next step."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from bot.actions import Action
from bot.agent import Agent
from bot.approvals import describe_validation
from bot.llm import ModelReply


@dataclass(frozen=True)
class Parsed:
    action: Action
    reason: str | None


@dataclass(frozen=True)
class Invalid:
    message: str


def _from_content(content: str) -> tuple[str | None, Any]:
    """Fallback for servers that return the call as text: a JSON object naming the tool."""
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text.split("\n", 1)[1] if "\n" in text else text
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None, None
    try:
        obj = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    for key in ("name", "tool", "action", "intent", "function"):
        name = obj.get(key)
        if isinstance(name, str):
            args = obj.get("arguments", obj.get("parameters", obj.get("args")))
            if args is None:
                args = {k: v for k, v in obj.items() if k != key}
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    return name, args
            return name, args
    return None, None


def parse_reply(reply: ModelReply, agent: Agent) -> Parsed | Invalid:
    """Exactly one known tool with arguments that fit its schema, else an Invalid the model can act on."""
    known = ", ".join(a.name for a in agent.actions)
    if reply.tool_name is not None:
        name: str | None = reply.tool_name
        raw = reply.tool_arguments or "{}"
        try:
            args: Any = json.loads(raw)
        except json.JSONDecodeError as exc:
            return Invalid(f"arguments for {name} are not valid JSON ({exc.msg}); send one JSON object")
    elif reply.content:
        name, args = _from_content(reply.content)
        if name is None:
            return Invalid(f"no tool call in the reply; call exactly one tool ({known})")
        if isinstance(args, str):
            return Invalid(f"arguments for {name} are not valid JSON; send one JSON object")
    else:
        return Invalid(f"empty reply; call exactly one tool ({known})")
    action_type = agent.action(name or "")
    if action_type is None:
        return Invalid(f"unknown tool {name!r}; call one of: {known}")
    if not isinstance(args, dict):
        return Invalid(f"arguments for {name} must be a JSON object")
    # "reason" is our approver note, unless the action declares a field of that name itself.
    reason = args.pop("reason", None) if "reason" not in action_type.model_fields else None
    try:
        action = action_type.model_validate(args)
    except ValidationError as exc:
        return Invalid(f"invalid arguments for {name}: {describe_validation(exc)}")
    return Parsed(action, reason if isinstance(reason, str) and reason.strip() else None)
