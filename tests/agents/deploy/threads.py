"""Helpers for deploy tests that go through the real runtime: run it, wait for a thread, a crashed thread."""

from __future__ import annotations

from agents.deploy.actions import Deploy
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
