"""Scale-out on PostgreSQL: threads finished per second by 1, 2 and 4 `opsgate worker` processes.

A throwaway PostgreSQL database (on the ``--database-url`` server, 127.0.0.1:5432 by default) is filled with
N runnable threads (a request with its agent chosen, through ``SqlStore.create_thread``), then K `opsgate worker`
processes are started on it with a scripted model (``benchmarks/slack_fakes.py`` in its own process, answering
``done_for_now`` after ``--model-seconds``, 0 by default). Nothing hands these threads to the workers in memory:
each worker finds them by polling (``claim_threads``: a batch per poll, ``FOR UPDATE SKIP LOCKED``), loads,
calls the model and commits ``done``. Timed from the workers' start until every thread is done (counted in SQL
every 20 ms), so worker start-up is included; "after first done" leaves it out. Run:
``python -m benchmarks.scale_out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.pg import DEFAULT_SERVER, throwaway_database
from benchmarks.report import median, table, write_json
from bot.events import AgentSelected, UserMessage, Via, new_id
from bot.thread import Thread
from storage import SqlStore
from storage.database import asyncpg_dsn

ROOT = Path(__file__).resolve().parent.parent


async def fill(url: str, n: int) -> None:
    """N runnable threads, created concurrently in batches of 200 (group commit)."""
    store = SqlStore.from_url(url)
    try:
        for start in range(0, n, 200):
            await asyncio.gather(*(
                store.create_thread(Thread(id=new_id(), agent="deploy", events=[
                    UserMessage(text=f"what is deployed for api? ({i})", user="U0BENCH", via=Via(channel="api")),
                    AgentSelected(agent="deploy", reason="benchmark"),
                ]), "running")
                for i in range(start, min(n, start + 200))
            ))
    finally:
        await store.close()


async def done_count(conn: asyncpg.Connection) -> int:
    """Threads done so far. One count on a plain connection: the benchmark shares the cores with what it measures,
    and ``SqlStore.count_threads`` (every status, through SQLAlchemy) took 1.1 ms of CPU a poll, 50 polls a
    second (~6% of a core); this takes 0.1 ms."""
    return int(await conn.fetchval("SELECT count(*) FROM threads WHERE status = 'done'"))


async def measure(url: str, n: int, workers: int, model_url: str) -> dict[str, Any]:
    """Fill, start ``workers`` processes, time until all N are done; then stop them."""
    await fill(url, n)
    env = {**os.environ, "DATABASE_URL": url, "OPENAI_BASE_URL": model_url, "OPENAI_API_KEY": "bench-key",
           "PYTHONPATH": str(ROOT), "OPSGATE_LOG_LEVEL": "warning"}
    counter = await asyncpg.connect(asyncpg_dsn(url))
    began = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "bot", "worker"], cwd=ROOT, env=env,  # noqa: ASYNC220
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(workers)]
    first_s: float | None = None
    try:
        while (finished := await done_count(counter)) < n:
            if finished and first_s is None:
                first_s = time.perf_counter() - began
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker exited: {proc.stderr.read().decode()[-3000:] if proc.stderr else ''}")
            if time.perf_counter() - began > 600:
                raise RuntimeError(f"only {finished} of {n} threads finished in 600 s")
            await asyncio.sleep(0.02)
        total_s = time.perf_counter() - began
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        await counter.close()
    first = first_s or total_s
    return {"workers": workers, "n": n, "total_s": total_s, "startup_s": first,
            "threads_per_s": n / total_s, "threads_per_s_after_first": n / max(total_s - first, 1e-9)}


async def run(n: int, worker_counts: list[int], reps: int, model_seconds: float, server: str) -> dict[str, Any]:
    fakes = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.slack_fakes", "--model-seconds", str(model_seconds),
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert fakes.stdout is not None and fakes.stdin is not None
    runs: list[dict[str, Any]] = []
    try:
        urls = json.loads(await fakes.stdout.readline())
        for rep in range(reps):
            for workers in worker_counts:  # alternate within each repetition: drift hits every count alike
                async with throwaway_database(server) as url:
                    result = await measure(url, n, workers, urls["model_url"])
                runs.append({**result, "rep": rep, "load_avg": os.getloadavg()})
        fakes.stdin.close()
        await fakes.stdout.readline()
    finally:
        if fakes.returncode is None:
            fakes.kill()
        await fakes.wait()
    summary = []
    for workers in worker_counts:
        mine = [r for r in runs if r["workers"] == workers]
        summary.append({"workers": workers, "threads_per_s": median([r["threads_per_s"] for r in mine]),
                        "threads_per_s_after_first": median([r["threads_per_s_after_first"] for r in mine])})
    base = summary[0]["threads_per_s"] or 1.0
    for entry in summary:
        entry["speedup_vs_first"] = entry["threads_per_s"] / base
    return {"summary": summary, "runs": runs}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="threads per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--model-seconds", type=float, default=0.0)
    parser.add_argument("--database-url", default=DEFAULT_SERVER,
                        help="PostgreSQL server (every run gets a throwaway database on it)")
    parser.add_argument("--quick", action="store_true", help="smoke run: n=40, 1 and 2 workers, 1 repetition")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    n, counts, reps = (40, [1, 2], 1) if args.quick else (args.n, args.workers, args.reps)
    load_before = os.getloadavg()
    result = asyncio.run(run(n, counts, reps, args.model_seconds, args.database_url))
    print(table(["workers", "threads/s", "after first done", "speed-up"],
                [[s["workers"], s["threads_per_s"], s["threads_per_s_after_first"], s["speedup_vs_first"]]
                 for s in result["summary"]]))
    path = write_json("scale_out", {
        "setup": f"PostgreSQL (throwaway database), N={n} runnable threads filled first, K `opsgate worker` "
                 f"processes (default settings), scripted model taking {args.model_seconds} s in its own process",
        "target": "2 workers >= 1.7x one worker", "load_avg_before": load_before, **result,
    }, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
