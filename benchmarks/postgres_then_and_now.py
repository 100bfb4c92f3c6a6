"""One HITL measurement of any checkout's opsgate on a fresh PostgreSQL database: then-and-now comparisons.

``hitl_vs_langgraph --database-url`` measures this checkout; older commits' benchmarks had no such option. This
drives a checkout's own ``benchmarks/hitl_opsgate.py`` (its agent, model and channel as that commit defined
them) on a throwaway database on 127.0.0.1:5432, N launches to paused then N resumes, and prints one JSON line
on stderr. Run it from that checkout, with it first on the path::

    git worktree add /tmp/old b74c13b
    cd /tmp/old && PYTHONPATH=/tmp/old python /path/to/benchmarks/postgres_then_and_now.py 300 sequential

Measure both checkouts alternately, in one session, on a quiet machine.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

import asyncpg
import structlog

from benchmarks import hitl_opsgate as side_module
from benchmarks.hitl_scenario import drive

SERVER = "postgresql://postgres@127.0.0.1:5432/test"


async def measure(n: int, mode: str) -> dict[str, float | int | str]:
    """N launches to paused, then N resumes, on a database created for this run and dropped after it."""
    from storage import upgrade  # the checkout's own migrations (older ``ensure_schema`` only checks)

    h = side_module
    name = "then_now_" + uuid.uuid4().hex[:8]
    admin = await asyncpg.connect(SERVER)
    await admin.execute(f"CREATE DATABASE {name}")
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        side = h.OpsgateSide()
        settings = h.load_settings({"DATABASE_URL": url, "OPSGATE_APPROVERS": h.APPROVER})
        h.configure_logging(settings.log_level)
        side.watcher = h.CommitWatcher()
        structlog.configure(processors=[side.watcher, *structlog.get_config()["processors"]])
        await upgrade(url)
        side.approvals = h.ApprovalIds()
        side.runtime = h.Runtime(settings=settings, store=h.store_for(url), registry=h.Registry([h.bench_agent()]),
                                 channels=[side.approvals], model=h.ScriptedModel())
        side.loops = h.Loops()
        side.loops.start(side.runtime.loops())
        ids = [f"t{i:07d}" for i in range(n)]
        began = time.perf_counter()
        await drive(ids, side.launch, mode)
        launch_s = time.perf_counter() - began
        began = time.perf_counter()
        await drive(ids, side.resume, mode)
        resume_s = time.perf_counter() - began
        await side.close()
        return {"mode": mode, "n": n, "launch_per_s": n / launch_s, "resume_per_s": n / resume_s}
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


if __name__ == "__main__":
    result = asyncio.run(measure(int(sys.argv[1]), sys.argv[2]))
    print(json.dumps(result), file=sys.stderr)  # stdout carries the checkout's log lines
