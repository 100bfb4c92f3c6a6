"""Helpers for deploy tests that go through the real runtime: run it, wait for a thread, a crashed thread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agents.deploy.actions import Deploy
from bot.config import load_settings
from bot.events import (
    ActionProposed,
    AgentSelected,
    ApprovalDecided,
    ApprovalRequested,
    ExecutionStarted,
    UserMessage,
    new_id,
)
from bot.runtime import Loops, Runtime
from bot.thread import Thread
from bot.wiring import build_runtime, prepare_database

PROD = Deploy(service="api", version="1.4.2", environment="production")


@asynccontextmanager
async def running(url: str, **env: str) -> AsyncIterator[Runtime]:
    """The real runtime with its worker loop on ``url``."""
    settings = load_settings({"DATABASE_URL": url, "OPSGATE_POLL_INTERVAL": "0.05", "OPSGATE_MODEL_RETRIES": "1",
                              **env})
    await prepare_database(settings)
    runtime = build_runtime(settings, channels=[])
    loops = Loops()
    loops.start(runtime.loops())
    try:
        yield runtime
    finally:
        await loops.stop()
        await runtime.aclose()


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
