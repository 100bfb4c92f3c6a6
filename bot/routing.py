"""Choosing a thread's agent when none was given (factor 10): commands name their agent; otherwise a small
model call that may only pick a registered agent; otherwise the default agent."""

from __future__ import annotations

import json

import structlog

from bot.actions import ActionSchema
from bot.agent import Registry
from bot.errors import ModelRefused
from bot.events import AgentSelected, ModelCall
from bot.llm import ChatModel
from bot.thread import Thread

log = structlog.get_logger("opsgate.routing")

ROUTER_PROMPT = (
    "You route chat-ops requests to the one agent best suited to handle them. "
    "Call choose_agent with that agent's name."
)


def _router_tool(registry: Registry) -> ActionSchema:
    names = registry.names
    described = "; ".join(f"{a.name}: {a.description}" for a in registry)
    return ActionSchema(
        name="choose_agent",
        description=f"Pick the agent for this request. Agents: {described}",
        parameters={"type": "object", "properties": {"agent": {"type": "string", "enum": names}},
                    "required": ["agent"]},
    )


async def choose_agent(thread: Thread, registry: Registry, model: ChatModel | None) -> AgentSelected:
    """The agent for a thread with none: by command, by a routing model call, or the default."""
    text = (thread.last_human_text or "").strip()
    if len(registry.names) == 1:
        return AgentSelected(agent=registry.default, reason="only agent")
    if text.startswith("!"):
        word = text[1:].split(None, 1)[0] if len(text) > 1 else ""
        owners = registry.agents_with_action(word)
        if len(owners) > 1:  # an action lent to other agents (rollback) belongs to the agent that owns it
            home = {t.owner for a in owners for t in a.tools if t.name == word}
            owners = [a for a in owners if a.name in home] or owners
        if len(owners) == 1:
            return AgentSelected(agent=owners[0].name, reason=f"command !{word}")
        return AgentSelected(agent=registry.default, reason="default agent (command)")
    if model is None:
        return AgentSelected(agent=registry.default, reason="default agent (no model configured)")
    messages = [{"role": "system", "content": ROUTER_PROMPT}, {"role": "user", "content": text}]
    try:
        reply = await model.complete(messages, [_router_tool(registry)])
    except ModelRefused as exc:  # a 4xx will not go away by retrying: route to the default, the step reports it
        log.warning("routing_refused", thread_id=thread.id, error=str(exc))
        return AgentSelected(agent=registry.default, reason="default agent (router call refused)")
    call = ModelCall(model=reply.model, prompt_hash="router", prompt_tokens=reply.prompt_tokens,
                     completion_tokens=reply.completion_tokens, latency_ms=reply.latency_ms)
    try:
        choice = json.loads(reply.tool_arguments or reply.content or "{}").get("agent")
    except (json.JSONDecodeError, AttributeError):
        choice = None
    if choice in registry.names:
        return AgentSelected(agent=choice, reason="routing model call", call=call)
    log.info("routing_fallback", thread_id=thread.id, choice=choice)
    return AgentSelected(agent=registry.default, reason=f"default agent (router said {choice!r})", call=call)
