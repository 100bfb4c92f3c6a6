"""Helpers for deploy tests: a tool's context, and a thread whose deploy was started when the process died."""

from __future__ import annotations

import httpx

from agents.deploy.actions import Deploy
from agents.deploy.settings import DeploySettings
from bot.agent import ToolContext, ToolSettings
from bot.config import Settings
from bot.events import (
    ActionProposed,
    AgentSelected,
    ApprovalDecided,
    ApprovalRequested,
    ExecutionStarted,
    UserMessage,
    new_id,
)
from bot.thread import Thread
from storage import SqlStore, upgrade
from tests.support.deploy_ledger import deploy_records

PROD = Deploy(service="api", version="1.4.2", environment="production")


def crashed_thread() -> tuple[Thread, ExecutionStarted]:
    """A thread whose approved production deploy was started when the process died (no result yet)."""
    thread_id = new_id()
    proposal = ActionProposed(name="deploy", arguments=PROD.model_dump(), source="command")
    request = ApprovalRequested(action_id=proposal.action_id, name="deploy", arguments=proposal.arguments,
                                group="deployers", requester="bob@example.com")
    decided = ApprovalDecided(approval_id=request.approval_id, action_id=proposal.action_id, approved=True,
                              by="alice@example.com")
    intent = ExecutionStarted(action_id=proposal.action_id, name="deploy", arguments=proposal.arguments,
                              idempotency_key=f"{thread_id}:{proposal.action_id}", approved_by="alice@example.com")
    events = [UserMessage(text="!deploy service=api version=1.4.2 environment=production", user="bob@example.com"),
              AgentSelected(agent="deploy"), proposal, request, decided, intent]
    return Thread(id=thread_id, agent="deploy", events=events), intent


def tool_context(settings: Settings, ledger: SqlStore, http: httpx.AsyncClient, *, key: str = "t1:a1",
                 approved_by: str | None = "alice@example.com", resumed: bool = False) -> ToolContext:
    """What the engine hands the deploy tools for action ``key`` ("thread:action"), with the deploy settings."""
    thread_id, _, action_id = key.partition(":")
    return ToolContext(thread_id=thread_id, action_id=action_id, idempotency_key=key, requester="bob@example.com",
                       approved_by=approved_by, settings=ToolSettings.of(settings, DeploySettings),
                       records=deploy_records(ledger), http=http, resumed=resumed)


async def stored_crashed_thread(url: str) -> tuple[Thread, ExecutionStarted]:
    """crashed_thread() written to the (migrated) database at ``url``, as the dead process left it."""
    await upgrade(url)
    store = SqlStore.from_url(url)
    thread, intent = crashed_thread()
    try:
        await store.create_thread(thread, "running")
    finally:
        await store.close()
    return thread, intent
