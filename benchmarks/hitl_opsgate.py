"""The opsgate side of the HITL benchmark: the code ``opsgate serve`` runs, with only the model swapped.

``Runtime`` wires the SQL store (SQLite file, WAL), journal, service, engine, worker and outbox loops exactly as
the server does, and start-up's heap is frozen as the server freezes it; logging is configured as the server
configures it (JSON lines, info level; here written to whatever stdout is, /dev/null under the orchestrator). A
launch is ``Service.start_thread`` and ends when the worker has committed the approval request; a resume is
``Service.decide`` and ends when the worker has committed ``done``. Commit points are observed through the
journal's own ``thread_events`` log lines, which it emits after each commit. The deploy agent keeps its real
actions and policies; its tools are no-ops, like LangGraph's executor.
Run alone: ``python -m benchmarks.hitl_opsgate --n 1000 --mode concurrent --db /tmp/og.db``; with
``--database-url postgresql+asyncpg://…`` (an empty, migrated database) on PostgreSQL instead.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from agents.deploy import AGENT as DEPLOY
from benchmarks.hitl_scenario import (
    APPROVER,
    DEPLOY_ARGS,
    DEPLOY_REASON,
    DONE_MESSAGE,
    EXECUTOR_RESULT,
    REQUEST,
    REQUESTER,
    Side,
    run_cli,
)
from bot.actions import ActionSchema
from bot.agent import Agent, Registry, ToolContext
from bot.channel import Channel
from bot.config import load_settings
from bot.events import ApprovalRequested, Event, Via
from bot.llm import ModelReply
from bot.logs import configure_logging
from bot.runtime import Loops, Runtime, freeze_startup_heap
from bot.store import OutboxItem
from bot.thread import Thread
from storage import ensure_schema, store_for
from storage.database import asyncpg_dsn
from storage.schema import metadata

SLACK = Via(channel="slack", conversation="C0BENCH", message="1700000000.000100")


class ScriptedModel:
    """bot.llm.ChatModel in-process: proposes the deploy, and says done once the deploy result is in context."""

    name = "scripted"

    async def complete(
        self, messages: list[dict[str, str]], tools: Sequence[ActionSchema], options: object = None
    ) -> ModelReply:
        if "<deploy_result" in messages[-1]["content"]:
            return ModelReply(model=self.name, tool_name="done_for_now",
                              tool_arguments=json.dumps({"message": DONE_MESSAGE}))
        return ModelReply(model=self.name, tool_name="deploy",
                          tool_arguments=json.dumps({**DEPLOY_ARGS, "reason": DEPLOY_REASON}))


async def no_op(action: Any, ctx: ToolContext) -> str:
    """The executor does nothing, as in the LangGraph graph."""
    return EXECUTOR_RESULT


def bench_agent() -> Agent:
    """The deploy agent with its real actions, approval policies and prompt, and no-op tools."""
    return Agent(name=DEPLOY.name, description=DEPLOY.description, prompt_path=DEPLOY.prompt_path,
                 tools={action: no_op for action in DEPLOY.tools})


class ApprovalIds(Channel):
    """What a chat channel learns from outbound(): the approval id its button would carry. Sends nothing."""

    name = "bench"

    def __init__(self) -> None:
        self.approval: dict[str, str] = {}

    def outbound(self, thread: Thread, new: Sequence[Event]) -> list[OutboxItem]:
        for event in new:
            if isinstance(event, ApprovalRequested):
                self.approval[thread.id] = event.approval_id
        return []


class CommitWatcher:
    """A structlog processor resolving futures when the journal logs a committed event of a given type."""

    def __init__(self) -> None:
        self.waiting: dict[tuple[str, str], asyncio.Future[None]] = {}

    def expect(self, thread_id: str, event_type: str) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        self.waiting[(thread_id, event_type)] = future
        return future

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if event_dict.get("event") == "thread_events":
            for event in event_dict.get("events", ()):
                future = self.waiting.pop((str(event_dict.get("thread_id")), str(event["type"])), None)
                if future is not None and not future.done():
                    future.set_result(None)
        return event_dict


class OpsgateSide(Side):
    name = "opsgate"

    async def open(self, db: Path) -> None:
        url = self.database_url or f"sqlite+aiosqlite:///{db}"
        settings = load_settings({"DATABASE_URL": url, "OPSGATE_APPROVERS": APPROVER})
        configure_logging(settings.log_level)
        self.watcher = CommitWatcher()
        structlog.configure(processors=[self.watcher, *structlog.get_config()["processors"]])
        await ensure_schema(url)  # what `opsgate serve` does on start (prepare_database)
        self.approvals = ApprovalIds()
        self.runtime = Runtime(settings=settings, store=store_for(url), registry=Registry([bench_agent()]),
                               channels=[self.approvals], model=ScriptedModel())
        self.loops = Loops()
        self.loops.start(self.runtime.loops())
        freeze_startup_heap()  # what `opsgate serve` does once started (bot/app.py): full collections skip start-up

    async def launch(self, thread_id: str) -> None:
        paused = self.watcher.expect(thread_id, "approval_requested")
        await self.runtime.service.start_thread(REQUEST, user=REQUESTER, via=SLACK, thread_id=thread_id)
        await asyncio.wait_for(paused, 60)

    async def resume(self, thread_id: str) -> None:
        done = self.watcher.expect(thread_id, "done")
        await self.runtime.service.decide(thread_id, self.approvals.approval.pop(thread_id), approved=True,
                                          user=APPROVER, via=SLACK)
        await asyncio.wait_for(done, 60)

    async def close(self) -> None:
        await self.loops.stop()
        await self.runtime.aclose()

    async def footprint(self, db: Path) -> tuple[int, int]:
        """On PostgreSQL: bytes of opsgate's tables with their indexes and TOAST (after VACUUM), and rows."""
        if self.database_url is None:
            return await super().footprint(db)
        conn = await asyncpg.connect(asyncpg_dsn(self.database_url))
        try:
            tables = [t.name for t in metadata.sorted_tables]
            await conn.execute("VACUUM " + ", ".join(tables))
            size = await conn.fetchval("SELECT sum(pg_total_relation_size(c)) FROM unnest($1::regclass[]) c", tables)
            rows = sum([await conn.fetchval(f'SELECT count(*) FROM "{t}"') for t in tables])
            return int(size), int(rows)
        finally:
            await conn.close()

    def settings_used(self, db: Path) -> dict[str, Any]:
        return {"backend": "postgresql"} if self.database_url else super().settings_used(db)


if __name__ == "__main__":
    run_cli(OpsgateSide())
