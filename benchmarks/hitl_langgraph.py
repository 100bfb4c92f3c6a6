"""The LangGraph side of the HITL benchmark: StateGraph + interrupt() + AsyncSqliteSaver (file, WAL).

Idiomatic LangGraph: ``MessagesState`` with langchain-core messages, a propose node calling the scripted model,
an approval node calling ``interrupt()``, an execute node running a no-op executor, and a final model turn.
Run alone: ``python -m benchmarks.hitl_langgraph --n 1000 --mode concurrent --db /tmp/lg.db``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, interrupt

from benchmarks.hitl_scenario import (
    APPROVER,
    DEPLOY_ARGS,
    DEPLOY_REASON,
    DONE_MESSAGE,
    EXECUTOR_RESULT,
    REQUEST,
    Side,
    run_cli,
)


class ScriptedModel:
    """In-process model: proposes the deploy on the user's request, says done after a tool result."""

    def invoke(self, messages: list[Any]) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            return AIMessage(content=DONE_MESSAGE)
        call = {"name": "deploy", "args": {**DEPLOY_ARGS, "reason": DEPLOY_REASON}, "id": "call_deploy"}
        return AIMessage(content="", tool_calls=[call])


class State(MessagesState):
    decision: dict[str, Any] | None


def build_graph(model: ScriptedModel) -> StateGraph:
    """propose -> approval (interrupt) -> execute -> done."""

    def propose(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def approval(state: State) -> dict[str, Any]:
        call = cast(AIMessage, state["messages"][-1]).tool_calls[0]
        decision = interrupt({"action": call["name"], "arguments": call["args"]})
        return {"decision": decision}

    def execute(state: State) -> dict[str, Any]:
        call = cast(AIMessage, state["messages"][-1]).tool_calls[0]
        decision = state["decision"]
        if decision is None or not decision["approved"]:
            return {"messages": [ToolMessage(content="rejected", tool_call_id=call["id"])]}
        return {"messages": [ToolMessage(content=EXECUTOR_RESULT, tool_call_id=call["id"])]}

    def done(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(State)
    graph.add_node("propose", propose)
    graph.add_node("approval", approval)
    graph.add_node("execute", execute)
    graph.add_node("done", done)
    graph.add_edge(START, "propose")
    graph.add_edge("propose", "approval")
    graph.add_edge("approval", "execute")
    graph.add_edge("execute", "done")
    graph.add_edge("done", END)
    return graph


class LangGraphSide(Side):
    """AsyncSqliteSaver as shipped (synchronous=FULL, SQLite's default: an fsync per commit)."""

    name = "langgraph"
    synchronous: str | None = None

    async def open(self, db: Path) -> None:
        self._saver_cm = AsyncSqliteSaver.from_conn_string(str(db))
        saver = await self._saver_cm.__aenter__()
        await saver.setup()  # creates the tables and sets journal_mode=WAL
        if self.synchronous:
            await saver.conn.execute(f"PRAGMA synchronous={self.synchronous}")
        self.graph = build_graph(ScriptedModel()).compile(checkpointer=saver)

    async def launch(self, thread_id: str) -> None:
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        out = await self.graph.ainvoke({"messages": [HumanMessage(content=REQUEST)]}, config)
        if "__interrupt__" not in out:
            raise RuntimeError(f"{thread_id} did not pause: {out}")

    async def resume(self, thread_id: str) -> None:
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        out = await self.graph.ainvoke(Command(resume={"approved": True, "by": APPROVER}), config)
        if out["messages"][-1].content != DONE_MESSAGE:
            raise RuntimeError(f"{thread_id} did not finish: {out['messages'][-1]}")

    async def close(self) -> None:
        await self._saver_cm.__aexit__(None, None, None)


class LangGraphNormalSide(LangGraphSide):
    """The same saver with synchronous=NORMAL, the durability opsgate's SQLite store uses (fsync at checkpoints)."""

    name = "langgraph_normal"
    synchronous = "NORMAL"


if __name__ == "__main__":
    import sys

    normal = "--synchronous-normal" in sys.argv
    run_cli(LangGraphNormalSide() if normal else LangGraphSide(),
            [a for a in sys.argv[1:] if a != "--synchronous-normal"])
