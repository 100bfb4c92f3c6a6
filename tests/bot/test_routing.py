"""Routing picks a registered agent: by command, by a router model call, or the default."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from agents.deploy import AGENT as DEPLOY
from agents.incident import AGENT as INCIDENT
from bot.actions import ActionSchema
from bot.agent import Agent, Registry
from bot.errors import ModelRefused
from bot.events import UserMessage
from bot.llm import ModelReply
from bot.routing import choose_agent
from bot.thread import Thread

OTHER = Agent(name="incidents", description="triages incidents", prompt_path=Path("unused.md"))
REGISTRY = Registry([DEPLOY, OTHER], default="deploy")


class Router:
    """A ChatModel that answers the routing tool with a fixed agent, or refuses like a 4xx server."""

    name = "router-double"

    def __init__(self, answer: str | None = None, refuse: bool = False) -> None:
        self.answer, self.refuse, self.calls = answer, refuse, 0

    async def complete(self, messages: list[dict[str, str]], tools: Sequence[ActionSchema]) -> ModelReply:
        self.calls += 1
        if self.refuse:
            raise ModelRefused("the model server refused the request: HTTP 401")
        return ModelReply(model=self.name, tool_name="choose_agent", tool_arguments=json.dumps({"agent": self.answer}))


def asked(text: str) -> Thread:
    return Thread(id="t", events=[UserMessage(text=text, user="bob")])


async def test_router_choice_among_registered_agents_is_taken() -> None:
    """The router's pick is used when it names a registered agent, with the call recorded."""
    selected = await choose_agent(asked("the db is on fire"), REGISTRY, Router("incidents"))
    assert (selected.agent, selected.reason) == ("incidents", "routing model call")
    assert selected.call is not None and selected.call.model == "router-double"


async def test_unknown_router_choice_falls_back_to_the_default() -> None:
    """A name that is not registered cannot be chosen."""
    selected = await choose_agent(asked("hello"), REGISTRY, Router("launch_rockets"))
    assert selected.agent == "deploy" and "launch_rockets" in selected.reason


async def test_a_refused_router_call_falls_back_to_the_default_instead_of_retrying() -> None:
    """A 4xx from the model is not an outage: the thread goes to the default agent at once."""
    router = Router(refuse=True)
    selected = await choose_agent(asked("hello"), REGISTRY, router)
    assert (selected.agent, router.calls) == ("deploy", 1)
    assert "refused" in selected.reason


async def test_a_command_names_its_agent_without_a_model_call() -> None:
    """!deploy belongs to exactly one agent: no model request is made."""
    router = Router("incidents")
    selected = await choose_agent(asked("!deploy service=api version=1 environment=staging"), REGISTRY, router)
    assert selected.agent == "deploy" and router.calls == 0


async def test_a_lent_command_goes_to_the_agent_that_owns_it() -> None:
    """!rollback is offered by the deploy and the incident agent; without a thread agent it goes to deploy, its
    owner, and no model is asked."""
    router = Router("incident")
    selected = await choose_agent(asked("!rollback service=api environment=staging"),
                                  Registry([INCIDENT, DEPLOY], default="incident"), router)
    assert (selected.agent, selected.reason, router.calls) == ("deploy", "command !rollback", 0)


async def test_the_router_is_offered_only_the_registered_agents() -> None:
    """The routing tool's choices are exactly the registered agents' names, each with its description."""
    seen: list[Sequence[ActionSchema]] = []

    class Recording(Router):
        async def complete(self, messages: list[dict[str, str]], tools: Sequence[ActionSchema]) -> ModelReply:
            seen.append(tools)
            return await super().complete(messages, tools)

    await choose_agent(asked("why is api slow?"), REGISTRY, Recording("incidents"))
    [[tool]] = seen
    assert tool.parameters["properties"]["agent"]["enum"] == ["deploy", "incidents"]
    assert "triages incidents" in tool.description
