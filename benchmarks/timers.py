"""Durable timers: how many due timers one worker fires per second, and approve latency beside 100,000 pending.

On a fresh SQLite file (or a throwaway PostgreSQL database with ``--database-url``): approve ``--approvals``
waiting production deploys one at a time through ``Service.decide`` (each decision also deletes its request's
timer) with no other timer pending, then fill ``--pending`` timers due in a year (100 per
thread, through ``create_thread``) and approve as many again; then make ``--due`` timers due now (one per thread,
a handler appending one event) and let one ``TimerLoop`` fire them all. The approve latency must not grow with
the pending timers. Logging is at warning level. Run: ``python -m benchmarks.timers`` (``--quick`` for a smoke
run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.hitl_scenario import APPROVER, REQUESTER
from benchmarks.pg import throwaway_database
from benchmarks.report import median, percentile, table, write_json
from bot.config import load_settings
from bot.events import Done, UserMessage, Via, new_id
from bot.logs import configure_logging
from bot.runtime import Runtime, freeze_startup_heap
from bot.store import TimerChanges, TimerRow
from bot.thread import Thread
from bot.timers import Fired, schedule
from bot.wiring import build_runtime
from storage import upgrade

DEPLOY = "!deploy service=api version=1.4.2 environment=production"


async def note(thread: Thread, timer: TimerRow) -> Fired:
    """The benchmark's handler: one event per timer."""
    return Fired(events=[Done(message=f"timer {timer.key}")])


async def waiting(runtime: Runtime, count: int) -> list[tuple[str, str]]:
    """``count`` threads waiting for approval of a production deploy: (thread id, approval id)."""
    found = []
    for _ in range(count):
        thread = await runtime.service.start_thread(DEPLOY, user=REQUESTER, via=Via(channel="api"))
        advanced = await runtime.engine.advance(thread.id)
        assert advanced is not None and advanced.pending is not None, "the deploy did not wait for approval"
        found.append((thread.id, advanced.pending.approval_id))
    return found


async def approve_all(runtime: Runtime, pending: list[tuple[str, str]]) -> list[float]:
    """Approve each one at a time; the milliseconds each ``decide`` took."""
    latencies = []
    for thread_id, approval_id in pending:
        began = time.perf_counter()
        await runtime.service.decide(thread_id, approval_id, approved=True, user=APPROVER, via=Via(channel="api"))
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies


async def fill(runtime: Runtime, count: int, per_thread: int = 100) -> float:
    """``count`` timers due in a year, ``per_thread`` per thread; seconds taken."""
    began = time.perf_counter()
    later = datetime.now(UTC) + timedelta(days=365)
    for start in range(0, count, per_thread):
        thread = Thread(id=new_id()).with_events([UserMessage(text="filler")])
        timers = [schedule("note", later, key=f"f{start + i}") for i in range(min(per_thread, count - start))]
        await runtime.journal.create(thread, timers=TimerChanges(schedule=timers))
    return time.perf_counter() - began


async def fire(runtime: Runtime, count: int) -> dict[str, Any]:
    """``count`` timers due now, one per thread; one loop fires them all: timers per second."""
    due = datetime.now(UTC)
    for index in range(count):
        thread = Thread(id=new_id()).with_events([UserMessage(text="due")])
        await runtime.journal.create(thread, timers=TimerChanges(schedule=[schedule("note", due, key=str(index))]))
    began = time.perf_counter()
    fired_before = runtime.timers.fired
    while await runtime.timers.fire_due():
        pass
    elapsed = time.perf_counter() - began
    fired = runtime.timers.fired - fired_before
    return {"due": count, "fired": fired, "seconds": round(elapsed, 3), "fired_per_s": round(fired / elapsed, 1)}


def _latency(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(median(values), 2), "p95_ms": round(percentile(values, 95), 2),
            "max_ms": round(max(values), 2)}


async def analyze(url: str) -> None:
    """PostgreSQL: ANALYZE timers, as autovacuum does after the table grew (it also invalidates cached plans)."""
    import asyncpg

    from storage.database import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("ANALYZE timers")
    finally:
        await conn.close()


async def measure(url: str, pending: int, due: int, approvals: int, analyzed: bool = False) -> dict[str, Any]:
    await upgrade(url)
    settings = load_settings({"DATABASE_URL": url, "OPSGATE_APPROVERS_DEPLOYERS": APPROVER,
                              "OPSGATE_APPROVAL_EXPIRY": "4h", "OPSGATE_APPROVAL_REMINDER": "30m"})
    runtime = build_runtime(settings, channels=[])
    runtime.timer_handlers.register("note", note)
    freeze_startup_heap()  # what `opsgate serve` does once started (bot/app.py): full collections skip start-up
    try:
        without = await approve_all(runtime, await waiting(runtime, approvals))
        fill_s = await fill(runtime, pending)
        if analyzed:
            await analyze(url)
        beside = await approve_all(runtime, await waiting(runtime, approvals))
        firing = await fire(runtime, due)
    finally:
        await runtime.aclose()
    ratio = median(beside) / median(without) if median(without) else 0.0
    return {
        "pending_timers": pending, "fill_seconds": round(fill_s, 1),
        "approve_without_pending": _latency(without), "approve_beside_pending": _latency(beside),
        "approve_p50_ratio": round(ratio, 2), "firing": firing, "analyzed_after_fill": analyzed,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=2_000)
    parser.add_argument("--approvals", type=int, default=100)
    parser.add_argument("--database-url", help="a PostgreSQL server URL: a throwaway database on it")
    parser.add_argument("--analyze", action="store_true",
                        help="PostgreSQL: ANALYZE timers after the fill, as autovacuum would soon after")
    parser.add_argument("--quick", action="store_true", help="tiny N (smoke run)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.pending, args.due, args.approvals = 500, 50, 10
    configure_logging("warning")  # the figures leave out writing one log line per commit
    load_before = os.getloadavg()[0]
    if args.database_url:
        async with throwaway_database(args.database_url) as url:
            result = await measure(url, args.pending, args.due, args.approvals, args.analyze)
        backend = "postgresql"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = await measure(f"sqlite+aiosqlite:///{Path(tmp) / 'timers.db'}", args.pending, args.due,
                                   args.approvals)
        backend = "sqlite"
    result.update(backend=backend, loadavg_1m_before=round(load_before, 2),
                  loadavg_1m_after=round(os.getloadavg()[0], 2))
    print(table(
        ["backend", "pending", "approve p50 (0 pending)", "approve p50 (beside)", "ratio", "fired/s (one worker)"],
        [[backend, args.pending, result["approve_without_pending"]["p50_ms"],
          result["approve_beside_pending"]["p50_ms"], result["approve_p50_ratio"], result["firing"]["fired_per_s"]]],
    ))
    path = write_json("timers", {"results": result}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
